// The fetcher's periodic "fetch stats" line: the rate since the last line, spool depth, lag per partition.
// The line to read when a machine seems slow; one per statsIntervalMs.

import type { Logger } from '../core/logger.js';
import type { FetchStats } from './batch-spooler.js';

export class StatsReporter {
  state: 'running' | 'closed' = 'running';
  readonly #timer: NodeJS.Timeout;
  #lastSpooled = 0;
  #lastAt = performance.now();

  constructor(stats: () => FetchStats, intervalMs: number, log: Logger) {
    this.#timer = setInterval(() => log.info(this.line(stats()), 'fetch stats'), intervalMs);
  }

  /** The fields of one line; the rate covers the time since the previous call. */
  line(s: FetchStats): Record<string, unknown> {
    const now = performance.now();
    const rate = ((s.spooled - this.#lastSpooled) * 1000) / Math.max(1, now - this.#lastAt);
    this.#lastSpooled = s.spooled;
    this.#lastAt = now;
    return {
      itemsPerSec: Math.round(rate),
      spooled: s.spooled,
      quarantined: s.quarantined,
      depthItems: s.depth.items,
      depthBytes: s.depth.bytes,
      paused: s.paused,
      lag: s.lag,
    };
  }

  close(): void {
    this.state = 'closed';
    clearInterval(this.#timer);
  }
}
