// What the long-running spool components (fetcher, worker) hand back when started.

import type { SpoolPaths } from './layout.js';

export interface SpoolComponentHandle<Stats> {
  /** The pipeline's spool folders this component reads or writes. */
  readonly paths: SpoolPaths;
  /** Live counters. */
  stats(): Stats;
  /** Stops the component gracefully (see its own documentation); idempotent. */
  stop(): Promise<Stats>;
  /** Settles when the component has stopped: resolves with its final stats, rejects if it failed for good. */
  readonly done: Promise<Stats>;
}
