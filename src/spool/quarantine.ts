// The spool's quarantine folder: one JSON file per message or task that cannot be processed, with why. The
// fetcher writes bad messages here, the worker the tasks it quarantined or rejected. A file is durable when
// `write` resolves; `sluice status` counts them and an operator reads them.

import { join } from 'node:path';
import { fsyncDir, writeSynced } from './durable.js';
import { isDiskFull, randomId, sequence, type SpoolPaths } from './layout.js';
import type { DiskFullNotice } from './disk-full-notice.js';
import type { SpoolItem } from './segment.js';

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

export class QuarantineWriter {
  readonly paths: SpoolPaths;
  readonly #onDiskFull: DiskFullNotice | undefined;

  /**
   * `onDiskFull`: a full disk skips the file (write returns '') and is reported there (the workers, whose
   * record is the database's); without it the error is thrown (the fetcher, which pauses instead).
   */
  constructor(paths: SpoolPaths, onDiskFull?: DiskFullNotice) {
    this.paths = paths;
    this.#onDiskFull = onDiskFull;
  }

  /** Keeps a message that cannot be processed, with why; returns the file name. */
  async write(entry: QuarantineEntry): Promise<string> {
    const name = `${sequence()}-p${entry.partition}-o${entry.offset}-${randomId()}.json`;
    try {
      await writeSynced(
        join(this.paths.tmp, name),
        join(this.paths.quarantine, name),
        `${JSON.stringify(entry, null, 2)}\n`,
      );
      await fsyncDir(this.paths.quarantine);
    } catch (err) {
      if (this.#onDiskFull === undefined || !isDiskFull(err)) throw err;
      this.#onDiskFull.skipped(this.paths.quarantine, err as NodeJS.ErrnoException);
      return '';
    }
    return name;
  }
}

/** The entry for a task the worker took from the spool: the whole task is kept as the value. */
export function taskEntry(item: SpoolItem, topic: string, reason: string, detail: string): QuarantineEntry {
  const value = JSON.stringify(item.task);
  return {
    reason,
    detail,
    topic,
    partition: item.partition,
    offset: item.offset,
    key: Buffer.from(String(item.task.key)).toString('base64'),
    value: Buffer.from(value).toString('base64'),
    size: Buffer.byteLength(value),
    source: 'worker',
    at: new Date().toISOString(),
  };
}
