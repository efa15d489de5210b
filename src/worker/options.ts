// What starting a worker takes. Apart from worker.ts so that worker-setup.ts, which opens the parts these ask
// for, needs nothing of the worker itself.

import type { SluiceConfig } from '../config/config.js';
import type { Logger } from '../core/logger.js';
import type { StageMetrics } from '../core/metrics.js';
import type { Pool } from '../db/pool.js';

export interface WorkOptions {
  config: SluiceConfig;
  pipeline: string;
  log: Logger;
  workerId?: string;
  /** Stop by itself once the spool is empty (tests, batch use); default: keep polling until stopped. */
  exitWhenIdle?: boolean;
  /** Stage counters and histograms for the metrics endpoint. */
  metrics?: StageMetrics;
  /** The process's one pool, when something else in it already opened one (`run`, the demo): kept open. */
  pool?: Pool;
}
