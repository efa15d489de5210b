// A worker process: claims spool segments and runs their tasks through the pipeline's stages.
//
// States: running (claim segments while fewer than maxInFlight tasks are queued or running)
//         -> draining (first stop: no new claims; running stages may finish for shutdownGraceMs)
//         -> aborting (grace over, or a second stop: stages are aborted through their signal)
//         -> stopped (unfinished items written back to ready/, ledger flushed, pool closed).
//         -> failed (the claim loop hit an error it cannot get past, such as an unusable spool: running stages
//            are aborted, and everything is closed within FAIL_CLOSE_MS; `done` rejects with the error).
// Leases of held segments are renewed every leaseMs/3. A segment whose lease was lost (the worker stalled
// past it and another worker took it back) is left alone: its tasks are redone elsewhere, idempotently.
// Per segment, one read of the database says which keys are in the source (the others are rejected as bad
// messages), done, quarantined or part-done; copies of one key run one at a time (key-gate.ts).

import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import pLimit from 'p-limit';
import { getPipeline, type SluiceConfig } from '../core/config.js';
import { coerceError, SourceError, SpoolError, UsageError } from '../core/errors.js';
import { keyText } from '../core/task-key.js';
import type { Logger } from '../core/logger.js';
import type { StageMetrics } from '../core/metrics.js';
import { LedgerWriter } from '../db/ledger.js';
import { assertMigrated } from '../db/migrate.js';
import { parseDatabaseUrl } from '../db/database-url.js';
import { openPool, outageDelayMs, toDatabaseError } from '../db/pool.js';
import { inspectPipeline } from '../db/pipeline-tables.js';
import { sourceQueryError, type SourceInfo } from '../db/source.js';
import { loadTaskState, type TaskState } from '../db/task-state.js';
import type { Pool } from '../db/pool.js';
import { SpoolClaimer, type Claim } from '../spool/claim.js';
import { spoolDepth } from '../spool/depth.js';
import type { SpoolComponentHandle } from '../spool/handle.js';
import { asSpoolError, ensureSpool, safeWorkerId, spoolPaths } from '../spool/layout.js';
import type { SpoolItem } from '../spool/segment.js';
import { SpoolWriter } from '../spool/writer.js';
import { sleep } from './limits.js';
import { KeyGate } from './key-gate.js';
import { PACKET_HEADROOM_BYTES } from './output-limits.js';
import { rejectNotInSource } from './reject.js';
import { buildLimits, runTask, type TaskOutcome } from './run-task.js';

/** After a fatal error, how long running work may take to stop before everything is closed regardless. */
const FAIL_CLOSE_MS = 3000;

export interface WorkOptions {
  config: SluiceConfig;
  pipeline: string;
  log: Logger;
  workerId?: string;
  /** Stop by itself once the spool is empty (tests, batch use); default: keep polling until stopped. */
  exitWhenIdle?: boolean;
  /** Stage counters and histograms for the metrics endpoint. */
  metrics?: StageMetrics;
}

export interface WorkStats {
  done: number;
  dead: number;
  skipped: number;
  /** Tasks whose key has no source row: recorded as bad messages, not run. */
  rejected: number;
  returned: number;
  segments: number;
  inFlight: number;
  seconds: number;
}

/** stop(): the first call drains (then aborts after the grace period), a second call aborts at once. */
export type WorkerHandle = SpoolComponentHandle<WorkStats>;

interface Held {
  claim: Claim;
  items: SpoolItem[];
  settled: Set<number>;
  lost: boolean;
}

export async function startWorker(opts: WorkOptions): Promise<WorkerHandle> {
  const { config } = opts;
  const pipeline = getPipeline(config, opts.pipeline);
  if (pipeline.stages.length === 0) {
    throw new UsageError(`pipeline '${opts.pipeline}' has no stages`, 'add stages to the pipeline in sluice.config.ts');
  }
  const workerId = safeWorkerId(opts.workerId ?? `${hostname()}-${process.pid}`);
  const log = opts.log.child({ component: 'worker', pipeline: opts.pipeline, workerId });
  const paths = spoolPaths(resolvePath(config.spool.dir), opts.pipeline);
  await ensureSpool(paths);
  const pool = await openPool(config.database, { poolSize: 4 });
  let source: SourceInfo;
  let packet: number;
  try {
    await assertMigrated(pool);
    source = await inspectPipeline(pool, pipeline, opts.pipeline);
    packet = await maxAllowedPacket(pool);
  } catch (err) {
    await pool.end().catch(() => {});
    throw err;
  }
  const maxOutputBytes = Math.min(config.worker.maxOutputBytes, packet - PACKET_HEADROOM_BYTES);
  if (maxOutputBytes < config.worker.maxOutputBytes) {
    log.info({ maxOutputBytes, configured: config.worker.maxOutputBytes, maxAllowedPacket: packet }, "stage outputs limited by the server's max_allowed_packet");
  }
  const ledger = new LedgerWriter(pool, log, {
    maxBatch: config.worker.ledgerBatch,
    flushMs: config.worker.ledgerFlushMs,
    databaseUrl: config.database.url,
    maxStatementBytes: Math.min(4 * 1024 * 1024, packet - PACKET_HEADROOM_BYTES),
  });
  const claimer = new SpoolClaimer(paths, workerId, config.spool.leaseMs);
  const quarantine = new SpoolWriter(paths, config.spool.maxSegmentItems);
  const abort = new AbortController();
  const stopping = new AbortController();
  // Every running stage listens on these two signals: hundreds of listeners are expected, not a leak.
  setMaxListeners(0, abort.signal, stopping.signal);
  // Grace over (or a failure): writes held up by a database outage give their tasks back to the spool.
  abort.signal.addEventListener('abort', () => ledger.abort(), { once: true });
  const slots = pLimit(config.worker.maxInFlight);
  const limits = buildLimits(pipeline);
  const held = new Set<Held>();
  const started = performance.now();
  const stats: WorkStats = { done: 0, dead: 0, skipped: 0, rejected: 0, returned: 0, segments: 0, inFlight: 0, seconds: 0 };
  const gate = new KeyGate();
  let draining = false;
  /** A segment's error that no other segment can get past (the source or the spool is unusable): the worker fails. */
  let fatal: unknown = null;

  const rc = {
    pipelineName: opts.pipeline,
    pipeline,
    ledger,
    workerId,
    log,
    stopping: stopping.signal,
    abort: abort.signal,
    limits,
    maxOutputBytes,
    results: source.results,
    metrics: opts.metrics,
    onDead: async (item: SpoolItem, stage: string, err: Error, attempts: number): Promise<void> => {
      await quarantine.quarantine({
        reason: 'task-failed',
        detail: `stage ${stage} failed ${attempts} time(s): ${err.name}: ${err.message}`,
        topic: pipeline.topic,
        partition: item.partition,
        offset: item.offset,
        key: Buffer.from(String(item.task.key)).toString('base64'),
        value: Buffer.from(JSON.stringify(item.task)).toString('base64'),
        size: 0,
        source: 'worker',
        at: new Date().toISOString(),
      });
    },
  };

  const finishSegment = async (h: Held): Promise<void> => {
    held.delete(h);
    if (h.lost) return;
    if (h.settled.size === h.items.length) {
      await claimer.complete(h.claim);
      stats.segments++;
    } else {
      const unfinished = h.items.filter((_, i) => !h.settled.has(i));
      await claimer.release(h.claim, unfinished);
      stats.returned += unfinished.length;
      log.info({ segment: h.claim.segment, returned: unfinished.length }, 'unfinished items returned to the spool');
    }
  };

  // A database outage while reading what the ledger knows is waited out, like ledger writes are; a stop
  // meanwhile gives the segment back untouched (null).
  const loadState = async (h: Held): Promise<TaskState | null> => {
    const keys = [...new Set(h.items.map((i) => keyText(i.task.key)))];
    for (let attempt = 1; ; attempt++) {
      try {
        return await loadTaskState(pool, source, opts.pipeline, keys);
      } catch (err) {
        const gone = sourceQueryError(err, pipeline.source, opts.pipeline);
        if (gone !== null) throw gone;
        const e = toDatabaseError(err, parseDatabaseUrl(config.database.url), 0);
        if (!e.retriable) throw e;
        if (draining || abort.signal.aborted || h.lost) return null;
        const delayMs = outageDelayMs(attempt);
        log.warn({ err: e, attempt, delayMs, segment: h.claim.segment }, 'reading task state failed; retrying');
        await sleep(delayMs, stopping.signal).catch(() => {});
      }
    }
  };

  const processSegment = async (h: Held): Promise<void> => {
    try {
      await runSegment(h);
    } finally {
      // Whatever happened, the segment leaves this worker: finished items are done, the rest go back.
      await finishSegment(h).catch((err: unknown) => {
        throw asSpoolError(err, paths);
      });
    }
  };

  const runSegment = async (h: Held): Promise<void> => {
    const state = await loadState(h);
    if (state === null) return;
    const strangers = h.items.flatMap((item, index) => (state.inSource.has(keyText(item.task.key)) ? [] : [{ item, index }]));
    if (strangers.length > 0) {
      await rejectNotInSource(strangers.map((s) => s.item), { pool, quarantine, pipeline: opts.pipeline, topic: pipeline.topic, table: source.table, workerId, log });
      for (const s of strangers) h.settled.add(s.index);
      stats.rejected += strangers.length;
    }
    await Promise.all(
      h.items.map((item, index) =>
        slots(async () => {
          // Not started yet when the stop came: it goes back to the spool untouched.
          if (draining || abort.signal.aborted || h.lost || h.settled.has(index)) return;
          stats.inFlight++;
          let outcome: TaskOutcome;
          try {
            outcome = await gate.run(keyText(item.task.key), () => runTask(item, state, rc));
          } catch (err) {
            // Not a ledger refusal (those quarantine the task): a bug or an unusable spool quarantine.
            log.error({ err: coerceError(err), key: item.task.key }, 'task failed unexpectedly; returning it to the spool');
            outcome = 'aborted';
          } finally {
            stats.inFlight--;
          }
          if (outcome !== 'aborted') {
            h.settled.add(index);
            stats[outcome]++;
            opts.metrics?.tasks.inc({ pipeline: opts.pipeline, outcome });
          }
        }),
      ),
    );
    await ledger.flush();
  };

  const renewTimer = setInterval(() => {
    for (const h of held) {
      claimer.renew(h.claim).then(
        (ok) => {
          if (!ok && !h.lost) {
            h.lost = true;
            log.warn({ segment: h.claim.segment }, 'lease lost: another worker took the segment back');
          }
        },
        (err: unknown) => log.warn({ err }, 'lease renewal failed'),
      );
    }
  }, Math.max(100, Math.floor(config.spool.leaseMs / 3)));

  const running = new Set<Promise<void>>();
  const nextClaim = async (): Promise<Held | null> => {
    try {
      await claimer.recoverExpired();
      const claim = await claimer.claim();
      return claim === null ? null : { claim, items: await claimer.read(claim), settled: new Set(), lost: false };
    } catch (err) {
      throw asSpoolError(err, paths);
    }
  };
  const loop = async (): Promise<void> => {
    while (!draining) {
      if (slots.pendingCount > 0) {
        await sleep(10);
        continue;
      }
      const h = await nextClaim();
      if (h === null) {
        // Idle means nothing ready and nothing claimed: a dead worker's segment comes back when its lease ends.
        if (opts.exitWhenIdle === true && running.size === 0 && (await spoolDepth(paths)).items === 0) break;
        await sleep(config.worker.pollMs);
        continue;
      }
      const claim = h.claim;
      held.add(h);
      const p = processSegment(h).catch((err: unknown) => {
        log.error({ err, segment: claim.segment }, 'segment failed');
        if (err instanceof SourceError || err instanceof SpoolError) {
          fatal ??= err;
          draining = true;
        }
      });
      running.add(p);
      void p.finally(() => running.delete(p));
    }
    await Promise.all(running);
    if (fatal !== null) throw fatal;
  };

  let stopped: Promise<WorkStats> | null = null;
  let graceTimer: NodeJS.Timeout | undefined;
  // A loop that failed stops everything it started, within FAIL_CLOSE_MS, and `done` rejects with its error.
  const failStop = async (err: unknown): Promise<void> => {
    log.error({ err }, 'worker failed; stopping');
    draining = true;
    stopping.abort(new Error('worker failed'));
    abort.abort(new Error('worker failed'));
    await Promise.race([Promise.all(running), sleep(FAIL_CLOSE_MS)]);
  };
  const loopDone = loop().catch(async (err: unknown) => {
    await failStop(err);
    throw err;
  });
  const done = (async () => {
    try {
      await loopDone;
    } finally {
      clearTimeout(graceTimer);
      clearInterval(renewTimer);
      await closeBounded(ledger, pool, log);
    }
    const s = { ...stats, seconds: (performance.now() - started) / 1000 };
    log.info({ done: s.done, dead: s.dead, skipped: s.skipped, rejected: s.rejected, returned: s.returned, seconds: Number(s.seconds.toFixed(1)) }, 'worker stopped');
    return s;
  })();
  done.catch(() => {});
  log.info({ spool: paths.root, stages: pipeline.stages.map((s) => s.name) }, 'worker started');

  return {
    paths,
    stats: () => ({ ...stats, seconds: (performance.now() - started) / 1000 }),
    stop: () => {
      if (stopped !== null) {
        abort.abort(new Error('forced stop'));
        return stopped;
      }
      draining = true;
      stopping.abort(new Error('stopping'));
      log.info({ graceMs: config.worker.shutdownGraceMs, inFlight: stats.inFlight }, 'worker draining');
      graceTimer = setTimeout(() => abort.abort(new Error('shutdown grace period over')), config.worker.shutdownGraceMs);
      stopped = done;
      return stopped;
    },
    done,
  };
}

async function maxAllowedPacket(pool: Pool): Promise<number> {
  const [rows] = await pool.query<import('mysql2/promise').RowDataPacket[]>('SELECT @@max_allowed_packet AS p');
  return Number(rows[0]?.p ?? 16 * 1024 * 1024);
}

/** Flushes the ledger and closes the pool; each step on its own, neither may keep the process past its bound. */
async function closeBounded(ledger: LedgerWriter, pool: Pool, log: Logger): Promise<void> {
  try {
    await ledger.close();
  } catch (err) {
    log.warn({ err }, 'ledger close failed');
  }
  try {
    await Promise.race([pool.end(), sleep(FAIL_CLOSE_MS)]);
  } catch (err) {
    log.warn({ err }, 'database pool close failed');
  }
}
