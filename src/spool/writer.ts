// The fetcher's side of the spool: turns a fetched batch into durable segments, and bad messages into
// quarantine entries. Returns only once everything it was given is on disk (files and directory synced),
// which is what allows the fetcher to commit the batch's offsets.

import { randomBytes } from 'node:crypto';
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, writeSynced } from './durable.js';
import { asSpoolError, ensureSpool, segmentName, type SpoolPaths } from './layout.js';
import { encodeItems, type SpoolItem } from './segment.js';

export interface QuarantineEntry {
  reason: string;
  detail: string;
  topic: string;
  partition: number;
  offset: string;
  /** Message key and value as base64 (the value cut to `maxStoredBytes`). */
  key: string | null;
  value: string | null;
  size: number;
  source: 'fetcher' | 'worker';
  at: string;
}

let counter = 0;
const seq = (): string => `${Date.now().toString().padStart(13, '0')}${(counter++ % 1_000_000).toString().padStart(6, '0')}`;
const rand = (): string => randomBytes(4).toString('hex');

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

  /** Keeps a message that cannot be processed, with why; returns the file name. */
  async quarantine(entry: QuarantineEntry): Promise<string> {
    const name = `${seq()}-p${entry.partition}-o${entry.offset}-${rand()}.json`;
    await writeSynced(join(this.paths.tmp, name), join(this.paths.quarantine, name), `${JSON.stringify(entry, null, 2)}\n`);
    await fsyncDir(this.paths.quarantine);
    return name;
  }
}
