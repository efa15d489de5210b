// What a worker needs before it claims anything: a database pool, a migrated ledger, a source (and result
// table) it can trust, and the server's packet limit, which bounds stage outputs and ledger statements.
// Anything that fails here closes what was opened and throws (the CLI prints one line).

import type { PipelineConfig, SluiceConfig } from '../config/config.js';
import { Heartbeat } from '../ledger/heartbeat.js';
import { ResourceCoordinator, type ResourceSpec } from '../resources/coordinator.js';
import { leaseForTimeout } from '../config/lease-time.js';
import { randomId, type SpoolPaths } from '../spool/layout.js';
import { DiskFullNotice } from '../spool/disk-full-notice.js';
import type { Logger } from '../core/logger.js';
import { LedgerWriter } from '../ledger/ledger-writer.js';
import { assertMigrated } from '../db/migrate.js';
import { checkPipelineTables } from '../user-tables/pipeline-tables.js';
import { registerStages } from '../ledger/stage-versions.js';
import { displayKey } from '../user-tables/key-shape.js';
import { maxAllowedPacket, usePool, type Pool } from '../db/pool.js';
import { sourceQueryError } from '../user-tables/source.js';
import { loadTaskState } from '../ledger/task-state.js';
import { SpoolClaimer } from '../spool/claim.js';
import { QuarantineWriter, taskEntry } from '../spool/quarantine.js';
import type { LimitFunction } from 'p-limit';
import type { LeaseKeeper } from './lease-keeper.js';
import { PACKET_HEADROOM_BYTES } from './output-limits.js';
import { rejectItems } from './reject.js';
import { ledgerId } from '../ledger/ledger-id.js';
import { buildLimits, type RunnerContext } from './run-task.js';
import { SegmentRunner, type WorkCounters } from './segment-runner.js';
import type { WorkOptions } from './options.js';

export interface WorkerParts {
  pipeline: PipelineConfig;
  pool: Pool;
  /** Ends the pool if this worker opened it (a lent one stays open for its owner). */
  releasePool(): Promise<void>;
  ledger: LedgerWriter;
  claimer: SpoolClaimer;
  /** Fires on the first stop: no stage starts after it. */
  stopping: AbortController;
  /** Fires when running stages must give up. */
  abort: AbortController;
  stats: WorkCounters;
  /** Fleet-wide resources of the pipeline's stages, when any. */
  resources: ResourceCoordinator | undefined;
  /** This process's row in the registry of live processes. */
  heartbeat: Heartbeat;
  runner(slots: LimitFunction, leases: LeaseKeeper): SegmentRunner;
}

/** The ledger writer, its statements sized under the server's max_allowed_packet, and the stage output limit. */
async function openLedgerWriter(
  pool: Pool,
  config: SluiceConfig,
  log: Logger,
): Promise<{ ledger: LedgerWriter; maxOutputBytes: number }> {
  const packet = await maxAllowedPacket(pool);
  const maxOutputBytes = Math.min(config.worker.maxOutputBytes, packet - PACKET_HEADROOM_BYTES);
  if (maxOutputBytes < config.worker.maxOutputBytes) {
    log.info(
      { maxOutputBytes, configured: config.worker.maxOutputBytes, maxAllowedPacket: packet },
      "stage outputs limited by the server's max_allowed_packet",
    );
  }
  const ledger = new LedgerWriter(pool, log, {
    maxBatch: config.worker.ledgerBatch,
    flushMs: config.worker.ledgerFlushMs,
    databaseUrl: config.database.url,
    maxStatementBytes: Math.min(4 * 1024 * 1024, packet - PACKET_HEADROOM_BYTES),
  });
  return { ledger, maxOutputBytes };
}

// Plain data properties only: a getter here would put the object in dictionary mode, and it is updated per task.
function emptyStats(): WorkCounters {
  return {
    done: 0,
    quarantined: 0,
    skipped: 0,
    rejected: 0,
    returned: 0,
    segments: 0,
    inFlight: 0,
    seconds: 0,
  };
}

export async function openWorkerParts(
  opts: WorkOptions,
  pipeline: PipelineConfig,
  paths: SpoolPaths,
  workerId: string,
  log: Logger,
): Promise<WorkerParts> {
  const { config } = opts;
  const { pool, release: releasePool } = await usePool(config.database, opts.pool);
  try {
    await assertMigrated(pool);
    const source = await checkPipelineTables(pool, pipeline);
    // From now on this code's stage versions exist: a stage new here is missing from tasks done before (stale).
    await registerStages(
      pool,
      pipeline.name,
      pipeline.stages.map((s) => ({ name: s.name, version: s.version })),
    );
    const ownLedger = await ledgerId(pool);
    const { ledger, maxOutputBytes } = await openLedgerWriter(pool, config, log);
    const quarantine = new QuarantineWriter(paths, new DiskFullNotice(log));
    const stopping = new AbortController();
    const abort = new AbortController();
    const stats = emptyStats();
    const rc: RunnerContext = {
      pipelineName: opts.pipeline,
      pipeline,
      ledger,
      workerId,
      log,
      stopping: stopping.signal,
      abort: abort.signal,
      limits: buildLimits(pipeline),
      maxOutputBytes,
      results: source.results,
      showKey: (key) => displayKey(source, key),
      metrics: opts.metrics,
      onQuarantined: async (item, stage, err, attempts) => {
        // The ledger's quarantine row is the record; a full disk skips the spool's copy (QuarantineWriter).
        await quarantine.write(
          taskEntry(
            item,
            pipeline.topic,
            'task-failed',
            `stage ${stage} failed ${attempts} time(s): ${err.name}: ${err.message}`,
          ),
        );
      },
    };
    const specs = resourceSpecs(config, pipeline);
    const processId = `${workerId}-${randomId()}`;
    const resources = specs.length === 0 ? undefined : new ResourceCoordinator(pool, processId, specs, log);
    const heartbeat = new Heartbeat(pool, {
      id: processId,
      role: 'worker',
      pipeline: opts.pipeline,
      log,
      info: () => ({ ...stats, dead: stats.quarantined, spool: paths.root, resources: resources?.snapshot() ?? [] }),
    });
    rc.resources = resources;
    resources?.start();
    const claimer = new SpoolClaimer(paths, workerId, config.spool.leaseMs);
    const runner = (slots: LimitFunction, leases: LeaseKeeper): SegmentRunner =>
      new SegmentRunner({
        rc,
        slots,
        claimer,
        leases,
        paths,
        databaseUrl: config.database.url,
        stats,
        readState: async (keys) => {
          try {
            return await loadTaskState(pool, source, opts.pipeline, keys);
          } catch (err) {
            throw sourceQueryError(err, pipeline.source, opts.pipeline) ?? err;
          }
        },
        ledger: ownLedger,
        reject: (items, reason) =>
          rejectItems(items, reason, {
            pool,
            quarantine,
            pipeline: opts.pipeline,
            topic: pipeline.topic,
            table: source.table,
            workerId,
            ledger: ownLedger,
            log,
          }),
      });
    return { pipeline, pool, releasePool, ledger, claimer, stopping, abort, stats, resources, heartbeat, runner };
  } catch (err) {
    await releasePool().catch(() => {});
    throw err;
  }
}

/**
 * The resources the stages use, each with its lease: a call must end before the lease does, so the lease
 * fits the longest stage timeout on it (lease-time.ts) unless the config sets one (validated to fit).
 */
export function resourceSpecs(config: SluiceConfig, pipeline: PipelineConfig): ResourceSpec[] {
  const names = [...new Set(pipeline.stages.flatMap((s) => (s.resource === undefined ? [] : [s.resource])))];
  return names.map((name) => {
    const r = config.resources[name]!;
    const longest = Math.max(...pipeline.stages.filter((s) => s.resource === name).map((s) => s.timeoutMs));
    return { name, config: r, leaseMs: r.leaseMs ?? leaseForTimeout(longest) };
  });
}
