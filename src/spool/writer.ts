// The fetcher's side of the spool: turns a fetched batch into durable segments. Returns only once everything
// it was given is on disk (files and directory synced), which is what allows the fetcher to commit the
// batch's offsets. Bad messages and quarantined tasks go through quarantine.ts.

import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, writeSynced } from './durable.js';
import {
  asSpoolError,
  ensureSpool,
  randomId as rand,
  segmentName,
  sequence as seq,
  type SpoolPaths,
} from './layout.js';
import { encodeItems, encodeLines, type SpoolItem, type SpoolLine } from './segment.js';

export class SpoolWriter {
  readonly paths: SpoolPaths;
  readonly #maxSegmentItems: number;

  constructor(paths: SpoolPaths, maxSegmentItems: number) {
    this.paths = paths;
    this.#maxSegmentItems = maxSegmentItems;
  }

  /** Creates the folders and deletes temporary files a crashed writer left behind. */
  async open(): Promise<void> {
    await ensureSpool(this.paths);
    try {
      for (const f of await readdir(this.paths.tmp)) await unlink(join(this.paths.tmp, f)).catch(() => {});
    } catch (err) {
      throw asSpoolError(err, this.paths);
    }
  }

  /**
   * Writes the items of one partition (in offset order) as segments; returns their names and total bytes.
   * The segments are written and fsynced in parallel (the disk can merge the flushes); the directory is
   * synced once, after all of them are in place.
   */
  writeItems(partition: number, items: readonly SpoolItem[]): Promise<{ names: string[]; bytes: number }> {
    return this.#write(
      partition,
      items.length,
      (i) => items[i]!.offset,
      (from, to) => Buffer.from(encodeItems(items.slice(from, to)), 'utf8'),
    );
  }

  /** The fetcher's path: validated messages, written from their own bytes (segment.ts encodeLines). */
  writeLines(partition: number, lines: readonly SpoolLine[]): Promise<{ names: string[]; bytes: number }> {
    return this.#write(
      partition,
      lines.length,
      (i) => lines[i]!.offset,
      (from, to) => encodeLines(partition, lines, from, to),
    );
  }

  async #write(
    partition: number,
    n: number,
    offsetOf: (i: number) => string,
    bytesOf: (from: number, to: number) => Buffer,
  ): Promise<{ names: string[]; bytes: number }> {
    const jobs: Array<Promise<void>> = [];
    const names: string[] = [];
    let bytes = 0;
    for (let i = 0; i < n; i += this.#maxSegmentItems) {
      const to = Math.min(n, i + this.#maxSegmentItems);
      const data = bytesOf(i, to);
      const name = segmentName({
        seq: seq(),
        partition,
        firstOffset: offsetOf(i),
        count: to - i,
        bytes: data.length,
        id: rand(),
      });
      jobs.push(writeSynced(join(this.paths.tmp, name), join(this.paths.ready, name), data));
      names.push(name);
      bytes += data.length;
    }
    await Promise.all(jobs);
    if (names.length > 0) await fsyncDir(this.paths.ready);
    return { names, bytes };
  }
}
