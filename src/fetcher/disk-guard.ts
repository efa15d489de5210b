// A full disk is backpressure, not a failure. Before each batch is written the fetcher asks whether the
// spool's file system keeps `spool.minFreeBytes` free after it; if not (or a write failed with ENOSPC
// anyway: another process filled the disk between the check and the write), the guard turns 'full', the
// fetcher pauses its topic as at the high-water mark and leaves the batch unresolved, so it is fetched again
// and nothing is committed past it. Every CHECK_MS it measures again, and turns 'ok' once the minimum plus
// one whole fetch (fetcher.maxBytes) is free, so the next batch fits (the workers free space as they finish
// segments). One warning line per episode, no stack. Batches written at the same time (several partitions)
// each reserve their bytes until written, so two of them never count the same free space.
//
// States: ok <-> full -> closed.

import { statfs } from 'node:fs/promises';
import type { Logger } from '../core/logger.js';

const CHECK_MS = 500;
/** Between two measurements the free space is the last one minus what was written since: statfs per batch costs. */
const MEASURE_EVERY_MS = 200;

export type FreeBytes = (dir: string) => Promise<number>;

/** Free space for an unprivileged writer on the file system holding `dir`. */
export const freeBytes: FreeBytes = async (dir) => {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
};

export interface DiskGuardOptions {
  dir: string;
  minFreeBytes: number;
  /** The largest fetch (fetcher.maxBytes): resuming needs room for one beyond the minimum. */
  batchBytes: number;
  log: Logger;
  onFull(): void;
  onRoom(): void;
  /** Tests measure another way. */
  free?: FreeBytes;
}

const mib = (n: number): number => Math.round((n / 1024 / 1024) * 10) / 10;

export class DiskGuard {
  state: 'ok' | 'full' | 'closed' = 'ok';
  /** Free bytes at the last measurement. */
  lastFree: number | null = null;
  readonly #o: DiskGuardOptions & { free: FreeBytes };
  #timer: NodeJS.Timeout | undefined;
  /** The episode's warning was logged. */
  #warned = false;
  /** Bytes of batches that had room and are being written. */
  #reserved = 0;
  /** Bytes written since the last measurement, and when that was (performance.now()). */
  #writtenSince = 0;
  #measuredAt = Number.NEGATIVE_INFINITY;

  constructor(opts: DiskGuardOptions) {
    this.#o = { free: freeBytes, ...opts };
  }

  /**
   * Whether `bytes` more can be written, reserving them until `written(bytes)`; false turns the guard 'full'
   * (the caller leaves the batch unresolved and reserves nothing).
   */
  async room(bytes: number): Promise<boolean> {
    if (this.state === 'full') return false;
    if (this.state === 'closed' || this.#o.minFreeBytes === 0) {
      this.#reserved += bytes;
      return true;
    }
    const free = await this.#estimate();
    if (free === null || free - this.#reserved - bytes >= this.#o.minFreeBytes) {
      this.#reserved += bytes;
      return true;
    }
    this.#full(free, null);
    return false;
  }

  /**
   * A batch that had room is on disk (or failed): its reservation ends, and counts as written until the next
   * measurement.
   */
  written(bytes: number): void {
    this.#reserved = Math.max(0, this.#reserved - bytes);
    this.#writtenSince += bytes;
  }

  /**
   * Free bytes now: measured at most every MEASURE_EVERY_MS, else the last measurement less what was written since.
   */
  async #estimate(): Promise<number | null> {
    if (this.lastFree !== null && performance.now() - this.#measuredAt < MEASURE_EVERY_MS)
      return this.lastFree - this.#writtenSince;
    return this.#measure();
  }

  /** A write failed with ENOSPC or EDQUOT. */
  failed(err: NodeJS.ErrnoException): void {
    if (this.state !== 'ok') return;
    // Paused at once (the batch in hand returns unresolved), the warning once the free space is known.
    this.#enter();
    void this.#measure().then((free) => this.state === 'full' && this.#full(free, err.code ?? 'ENOSPC'));
  }

  #full(free: number | null, code: string | null): void {
    if (this.state === 'closed') return;
    this.#enter();
    if (this.#warned) return;
    this.#warned = true;
    this.#o.log.warn(
      {
        freeMiB: free === null ? null : mib(free),
        minFreeMiB: mib(this.#o.minFreeBytes),
        resumeAtMiB: mib(this.resumeAt),
        dir: this.#o.dir,
        code: code ?? undefined,
      },
      'spool disk full: fetching paused until space returns',
    );
  }

  #enter(): void {
    if (this.state !== 'ok') return;
    this.state = 'full';
    this.#warned = false;
    this.#o.onFull();
    this.#timer = setInterval(() => void this.#recheck(), CHECK_MS);
  }

  async #recheck(): Promise<void> {
    const free = await this.#measure();
    if (this.state !== 'full' || free === null || free < this.resumeAt) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.state = 'ok';
    this.#o.log.info({ freeMiB: mib(free), dir: this.#o.dir }, 'spool disk has room again: fetching resumed');
    this.#o.onRoom();
  }

  /** Free bytes at which a full guard turns 'ok' again. */
  get resumeAt(): number {
    return this.#o.minFreeBytes + this.#o.batchBytes;
  }

  /** null when the file system cannot say (then only a failed write pauses). */
  async #measure(): Promise<number | null> {
    try {
      const at = performance.now();
      this.lastFree = await this.#o.free(this.#o.dir);
      this.#measuredAt = at;
      this.#writtenSince = 0;
      return this.lastFree;
    } catch {
      return null;
    }
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.state = 'closed';
  }
}
