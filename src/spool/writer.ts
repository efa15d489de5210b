// The fetcher's side of the spool: turns a fetched batch into durable segments. Returns only once everything
// it was given is on disk (files and directory synced), which is what allows the fetcher to commit the
// batch's offsets. Bad messages and quarantined tasks go through quarantine.ts.

import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, writeSynced } from './durable.js';
import { asSpoolError, ensureSpool, randomId as rand, segmentName, sequence as seq, type SpoolPaths } from './layout.js';
import { encodeItems, type SpoolItem } from './segment.js';

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
  async writeItems(partition: number, items: readonly SpoolItem[], lines?: readonly string[]): Promise<{ names: string[]; bytes: number }> {
    const jobs: Array<Promise<void>> = [];
    const names: string[] = [];
    let bytes = 0;
    for (let i = 0; i < items.length; i += this.#maxSegmentItems) {
      const chunk = items.slice(i, i + this.#maxSegmentItems);
      const data = Buffer.from(lines === undefined ? encodeItems(chunk) : lines.slice(i, i + this.#maxSegmentItems).join(''), 'utf8');
      const name = segmentName({ seq: seq(), partition, firstOffset: chunk[0]!.offset, count: chunk.length, bytes: data.length, id: rand() });
      jobs.push(writeSynced(join(this.paths.tmp, name), join(this.paths.ready, name), data));
      names.push(name);
      bytes += data.length;
    }
    await Promise.all(jobs);
    if (names.length > 0) await fsyncDir(this.paths.ready);
    return { names, bytes };
  }
}
