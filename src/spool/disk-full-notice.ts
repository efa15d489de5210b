// A worker on a full disk goes on without the spool's copies of what it quarantines (the database keeps the
// record), and says so: one warning, then at most one a minute with how many more copies were skipped, not a
// line per task when a whole segment fails on a full disk.

import type { Logger } from '../core/logger.js';

const EVERY_MS = 60_000;

export class DiskFullNotice {
  readonly #log: Logger;
  readonly #now: () => number;
  #lastAt = Number.NEGATIVE_INFINITY;
  #skipped = 0;

  constructor(log: Logger, now: () => number = Date.now) {
    this.#log = log;
    this.#now = now;
  }

  /** A spool copy was not written because the disk is full. */
  skipped(dir: string, err: NodeJS.ErrnoException): void {
    this.#skipped++;
    if (this.#now() - this.#lastAt < EVERY_MS) return;
    this.#lastAt = this.#now();
    this.#log.warn(
      { dir, code: err.code, skipped: this.#skipped },
      'spool disk full: quarantine copies not written (the database keeps the record)',
    );
    this.#skipped = 0;
  }
}
