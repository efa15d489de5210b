// A worker process: claims spool segments and runs their tasks through the pipeline's stages. Made of
// parts: the claim loop (intake, claim-loop.ts), the segment runner (tasks of one segment,
// segment-runner.ts), the lease keeper (lease-keeper.ts) and the ledger writer (ledger/ledger-writer.ts).
//
// States: running (claim segments while fewer than maxInFlight tasks are queued or running)
//         -> draining (first stop: no new claims; running stages may finish for shutdownGraceMs)
//         -> aborting (grace over, or a second stop: stages are aborted through their signal)
//         -> stopped (unfinished items written back to ready/, ledger flushed, pool closed).
//         -> failed (the claim loop hit an error it cannot get past, such as an unusable spool: running stages
//            are aborted, and everything is closed within FAIL_CLOSE_MS; `done` rejects with the error).
// Whatever the way out, close() runs: each cleanup step on its own, none can keep the process.

import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import pLimit from 'p-limit';
import { getPipeline, type ResolvedStage } from '../config/config.js';
import { UsageError } from '../core/errors.js';
import { childLogger, type Logger } from '../core/logger.js';
import { sleep } from '../core/sleep.js';
import { closeAll } from '../core/close.js';
import { spoolDepth } from '../spool/depth.js';
import type { SpoolComponentHandle } from '../spool/handle.js';
import { ensureSpool, safeWorkerId, spoolPaths, type SpoolPaths } from '../spool/layout.js';
import type { ResourceSnapshot } from '../resources/coordinator.js';
import { ClaimLoop } from './claim-loop.js';
import { LeaseKeeper } from './lease-keeper.js';
import type { WorkStats } from './segment-runner.js';
import type { WorkOptions } from './options.js';
import { openWorkerParts, type WorkerParts } from './worker-setup.js';

export type { WorkOptions };

/**
 * Tasks a worker runs at once: the configured number, or 256, or twice the largest stage concurrency when that
 * is more (a task also waits for its ledger writes, holding its slot, and the stage should stay full meanwhile).
 */
export function inFlightLimit(configured: number | undefined, stages: readonly ResolvedStage[]): number {
  if (configured !== undefined) return configured;
  const widest = Math.max(0, ...stages.map((s) => s.concurrency));
  return Math.max(256, 2 * widest);
}

export type { WorkStats } from './segment-runner.js';

/** After a fatal error, how long running work may take to stop before everything is closed regardless. */
const FAIL_CLOSE_MS = 3000;

/** stop(): the first call drains (then aborts after the grace period), a second call aborts at once. */
export interface WorkerHandle extends SpoolComponentHandle<WorkStats> {
  /** This process's view of the fleet-wide resources its stages use (empty when none). */
  resources(): ResourceSnapshot[];
}

type WorkerState = 'running' | 'draining' | 'aborting' | 'stopped' | 'failed';

export async function startWorker(opts: WorkOptions): Promise<WorkerHandle> {
  const pipeline = getPipeline(opts.config, opts.pipeline);
  if (pipeline.stages.length === 0) {
    throw new UsageError(`pipeline '${opts.pipeline}' has no stages`, 'add stages to the pipeline in sluice.config.ts');
  }
  const workerId = safeWorkerId(opts.workerId ?? `${hostname()}-${process.pid}`);
  const log = childLogger(opts.log, { component: 'worker', pipeline: opts.pipeline, workerId });
  const paths = spoolPaths(resolvePath(opts.config.spool.dir), opts.pipeline);
  await ensureSpool(paths);
  const worker = new Worker(opts, paths, log, await openWorkerParts(opts, pipeline, paths, workerId, log));
  log.info({ spool: paths.root, stages: pipeline.stages.map((s) => s.name) }, 'worker started');
  return worker;
}

class Worker implements WorkerHandle {
  state: WorkerState = 'running';
  readonly paths: SpoolPaths;
  readonly done: Promise<WorkStats>;
  readonly #opts: WorkOptions;
  readonly #log: Logger;
  readonly #parts: WorkerParts;
  readonly #loop: ClaimLoop;
  readonly #leases: LeaseKeeper;
  readonly #started = performance.now();
  #graceTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | null = null;

  constructor(opts: WorkOptions, paths: SpoolPaths, log: Logger, parts: WorkerParts) {
    this.#opts = opts;
    this.paths = paths;
    this.#log = log;
    this.#parts = parts;
    // Every running stage listens on these two signals: hundreds of listeners are expected, not a leak.
    setMaxListeners(0, parts.abort.signal, parts.stopping.signal);
    // Grace over (or a failure): writes held up by a database outage give their tasks back to the spool.
    parts.abort.signal.addEventListener('abort', () => parts.ledger.abort(), { once: true });
    const { config } = opts;
    const slots = pLimit(inFlightLimit(config.worker.maxInFlight, parts.pipeline.stages));
    this.#leases = new LeaseKeeper(parts.claimer, config.spool.leaseMs, log);
    const runner = parts.runner(slots, this.#leases);
    this.#loop = new ClaimLoop({
      claimer: parts.claimer,
      run: (h) => runner.run(h),
      waiting: () => slots.pendingCount,
      spoolItems: async () => (await spoolDepth(paths)).items,
      paths,
      pollMs: config.worker.pollMs,
      exitWhenIdle: opts.exitWhenIdle === true,
      log,
      onFatal: () => parts.stopping.abort(new Error('worker failed')),
    });
    this.done = this.#run();
    this.done.catch(() => {});
  }

  resources(): ResourceSnapshot[] {
    return this.#parts.resources?.snapshot() ?? [];
  }

  stats(): WorkStats {
    const s = this.#parts.stats;
    return { ...s, dead: s.quarantined, seconds: (performance.now() - this.#started) / 1000 };
  }

  /** The first call drains (aborting after the grace period); a second call aborts at once. */
  stop(): Promise<WorkStats> {
    if (this.state === 'running') {
      this.state = 'draining';
      this.#loop.drain();
      this.#parts.stopping.abort(new Error('stopping'));
      this.#log.info(
        { graceMs: this.#opts.config.worker.shutdownGraceMs, inFlight: this.#parts.stats.inFlight },
        'worker draining',
      );
      this.#graceTimer = setTimeout(
        () => this.#abort('shutdown grace period over'),
        this.#opts.config.worker.shutdownGraceMs,
      );
    } else if (this.state === 'draining') {
      this.#abort('forced stop');
    }
    return this.done;
  }

  #abort(why: string): void {
    if (this.state === 'draining' || this.state === 'running') this.state = 'aborting';
    this.#parts.abort.abort(new Error(why));
  }

  async #run(): Promise<WorkStats> {
    try {
      await this.#loop.run();
    } catch (err) {
      this.#log.error({ err }, 'worker failed; stopping');
      this.state = 'failed';
      this.#loop.drain();
      this.#parts.stopping.abort(new Error('worker failed'));
      this.#parts.abort.abort(new Error('worker failed'));
      await Promise.race([Promise.all(this.#loop.running), sleep(FAIL_CLOSE_MS)]);
      await this.close();
      throw err;
    }
    await this.close();
    this.state = 'stopped';
    const s = this.stats();
    this.#log.info(
      {
        done: s.done,
        quarantined: s.quarantined,
        skipped: s.skipped,
        rejected: s.rejected,
        returned: s.returned,
        seconds: Number(s.seconds.toFixed(1)),
      },
      'worker stopped',
    );
    return s;
  }

  /** Idempotent: stops the timers, flushes the ledger, closes the pool; each step on its own and bounded. */
  close(): Promise<void> {
    this.#closing ??= closeAll(this.#log, [
      ['grace timer', () => clearTimeout(this.#graceTimer)],
      ['lease keeper', () => this.#leases.close()],
      ['resource shares', () => this.#parts.resources?.close()],
      ['heartbeat', () => this.#parts.heartbeat.close()],
      ['ledger', () => this.#parts.ledger.close()],
      ['database pool', () => Promise.race([this.#parts.releasePool(), sleep(FAIL_CLOSE_MS)])],
    ]);
    return this.#closing;
  }
}
