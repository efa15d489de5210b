// The workers' side of the spool. A segment moves between folders only by rename(2), which is atomic:
//
//   ready/S --claim--> claimed/S~W~T --complete--> (deleted)
//                          |  ^ renew: claimed/S~W~T -> claimed/S~W~T2 (the lease is in the name)
//                          |--release(unfinished items)--> ready/S' (a new segment) + claimed/S~W~T deleted
//                          '--lease expired (any worker)--> ready/S
//
// Two claimers racing for ready/S both call rename; exactly one succeeds, the other gets ENOENT and tries the
// next segment, so no segment is ever held by two live claims. A worker that dies keeps its claim only until
// T; then any worker's `recoverExpired` puts the segment back. A worker whose renew fails has lost the
// segment (it expired and was recovered): it must stop working on it; the items it already finished are
// absorbed by idempotent result writes when the segment is processed again.
//
// A full disk never fails a worker: a rename that needs a directory block it cannot get leaves the segment
// where it is (claim: taken later; renew: the lease is renewed at the next try), and a release that cannot
// write the unfinished items puts the whole segment back instead (its finished items are skipped as done).

import { readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fsyncDir, writeSynced } from './durable.js';
import { claimedName, isDiskFull, parseClaimedName, parseSegmentName, segmentName, type SpoolPaths } from './layout.js';
import { decodeItems, encodeItems, type SpoolItem } from './segment.js';

export interface Claim {
  segment: string;
  /** Current file name under claimed/. */
  file: string;
  expiresAt: number;
}

const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';

export class SpoolClaimer {
  readonly #p: SpoolPaths;
  readonly #workerId: string;
  readonly #leaseMs: number;
  readonly #now: () => number;

  constructor(paths: SpoolPaths, workerId: string, leaseMs: number, now: () => number = Date.now) {
    this.#p = paths;
    this.#workerId = workerId;
    this.#leaseMs = leaseMs;
    this.#now = now;
  }

  /** Claims the oldest ready segment, or returns null when none is left. */
  async claim(): Promise<Claim | null> {
    const names = (await readdir(this.#p.ready)).filter((n) => parseSegmentName(n) !== null).sort();
    for (const segment of names) {
      const expiresAt = this.#now() + this.#leaseMs;
      const file = claimedName({ segment, workerId: this.#workerId, expiresAt });
      try {
        await rename(join(this.#p.ready, segment), join(this.#p.claimed, file));
        return { segment, file, expiresAt };
      } catch (err) {
        if (isMissing(err)) continue; // another worker was faster
        if (isDiskFull(err)) return null;
        throw err;
      }
    }
    return null;
  }

  async read(c: Claim): Promise<SpoolItem[]> {
    return decodeItems(await readFile(join(this.#p.claimed, c.file), 'utf8'));
  }

  /** Extends the lease; false when the claim was lost (expired and taken back). */
  async renew(c: Claim): Promise<boolean> {
    const expiresAt = this.#now() + this.#leaseMs;
    const file = claimedName({ segment: c.segment, workerId: this.#workerId, expiresAt });
    try {
      await rename(join(this.#p.claimed, c.file), join(this.#p.claimed, file));
    } catch (err) {
      if (isMissing(err)) return false;
      // Not renewed this time; still ours until it expires (then another worker may take it back: lost).
      if (isDiskFull(err)) return this.#now() < c.expiresAt;
      throw err;
    }
    c.file = file;
    c.expiresAt = expiresAt;
    return true;
  }

  /** Every item is done: the segment leaves the spool. */
  async complete(c: Claim): Promise<void> {
    await unlink(join(this.#p.claimed, c.file)).catch((err: unknown) => {
      if (!isMissing(err)) throw err;
    });
  }

  /** Gives back the unfinished items (shutdown): they become a new ready segment, durably, first. */
  async release(c: Claim, unfinished: readonly SpoolItem[]): Promise<void> {
    if (unfinished.length > 0) {
      const data = Buffer.from(encodeItems(unfinished), 'utf8');
      const meta = parseSegmentName(c.segment)!;
      const name = segmentName({
        ...meta,
        firstOffset: unfinished[0]!.offset,
        count: unfinished.length,
        bytes: data.length,
        id: randomBytes(4).toString('hex'),
      });
      try {
        await writeSynced(join(this.#p.tmp, name), join(this.#p.ready, name), data);
      } catch (err) {
        if (!isDiskFull(err)) throw err;
        // The whole segment goes back instead (its finished items are skipped as done); if even that
        // rename cannot be made, the claim stays until its lease expires and any worker recovers it.
        await rename(join(this.#p.claimed, c.file), join(this.#p.ready, c.segment)).catch((e: unknown) => {
          if (!isDiskFull(e) && !isMissing(e)) throw e;
        });
        await fsyncDir(this.#p.ready).catch(() => {});
        return;
      }
      await fsyncDir(this.#p.ready);
    }
    await this.complete(c);
  }

  /** Puts segments whose lease expired back into ready/; returns how many. Safe to run from every worker. */
  async recoverExpired(): Promise<number> {
    let n = 0;
    const now = this.#now();
    for (const file of await readdir(this.#p.claimed)) {
      const c = parseClaimedName(file);
      if (c === null || c.expiresAt > now) continue;
      try {
        await rename(join(this.#p.claimed, file), join(this.#p.ready, c.segment));
        n++;
      } catch (err) {
        // A full disk: tried again at the next recovery.
        if (!isMissing(err) && !isDiskFull(err)) throw err;
      }
    }
    return n;
  }
}
