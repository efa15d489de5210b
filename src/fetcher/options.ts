// What starting a fetcher takes. Apart from fetcher.ts so that fetcher-setup.ts, which opens the parts these
// ask for, needs nothing of the fetcher itself.

import type { SluiceConfig } from '../config/config.js';
import type { Logger } from '../core/logger.js';
import type { Pool } from '../db/pool.js';

export interface FetchOptions {
  config: SluiceConfig;
  pipeline: string;
  log: Logger;
  /** Shown in quarantine records; default <hostname>-<pid>. */
  fetcherId?: string;
  /**
   * Called after a batch is durable; `resolved` is the offset kafkajs will commit for its partition (tests, metrics).
   */
  onBatch?: (b: { partition: number; segments: string[]; quarantined: number; resolved: string }) => void;
  /** The process's one pool, when something else in it already opened one (`run`, the demo): kept open. */
  pool?: Pool;
}
