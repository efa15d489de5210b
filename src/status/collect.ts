// What `status` (and the demo's closing report) shows, collected in one place: the ledger's exact counts,
// per-stage progress and recent errors, the consumer group's lag and this machine's spool.

import { resolve } from 'node:path';
import { getPipeline, type PipelineConfig, type SluiceConfig } from '../config/config.js';
import { mayBeStale, stageMix, type StageMix } from '../ledger/stage-versions.js';
import { countStale, stageVersions } from '../producer/recompute.js';
import type { SourceInfo } from '../user-tables/table-info.js';
import type { Logger } from '../core/logger.js';
import { assertMigrated } from '../db/migrate.js';
import { checkPipelineTables } from '../user-tables/pipeline-tables.js';
import { tableRowsGuess } from '../user-tables/source.js';
import { openPool, smallPool, type Pool } from '../db/pool.js';
import { connectionsReport, type ConnectionsReport } from '../ledger/connections.js';
import { STALE_AFTER_S } from '../ledger/heartbeat.js';
import { listProcesses, type ProcessRow } from '../ledger/processes.js';
import { resourceStatus, type ResourceStatus } from '../ledger/resource-reads.js';
import { ledgerStatus, type ErrorGroup, type StageCount } from '../ledger/status-reads.js';
import { kafkaHealth, type KafkaHealth } from '../kafka/health.js';
import { consumerLag } from '../kafka/lag.js';
import { spoolDepth, type SpoolDepth } from '../spool/depth.js';
import { spoolPaths } from '../spool/layout.js';

/** Where a pipeline stands, as `status --json`, the dashboard's API and `collectStatus` give it. */
export interface StatusReport {
  pipeline: string;
  topic: string;
  table: string;
  source: number;
  done: number;
  pending: number;
  inFlight: number;
  /** Tasks in quarantine. */
  quarantined: number;
  /** The same as `quarantined`: the name earlier versions gave it, kept for scripts that read it. */
  dead: number;
  /** Results for keys that are not in the source (counted apart, never as done). */
  orphans: number;
  /** Done source rows whose result row another source row shares (results.mergeKeys). */
  shared: number;
  exact: boolean;
  countedAt: string;
  countAgeSeconds: number;
  stages: StageCount[];
  /**
   * Per stage: the code's version and the milestones other versions wrote (an index read). `staleTasks`: done tasks
   * stale from it, counted exactly (absent unless asked: `--current`, or from the index when nothing is stale).
   */
  versions: Array<StageMix & { staleTasks?: number }>;
  /** Done tasks stale from some stage, exactly (asked with `current`; null: not counted). */
  staleTasks: number | null;
  throughput: { resultsPerSecond: number };
  errors: ErrorGroup[];
  badMessages: number;
  resources: ResourceStatus[];
  processes: Array<ProcessRow & { stale: boolean }>;
  /** Database connections sluice holds now (docs/operations.md, "Connections"). */
  connections: ConnectionsReport;
  /** Messages behind, per partition (null: the group's offsets could not be read). */
  lag: Record<string, number> | null;
  /** Brokers and the topic's replication (undefined: not asked; null: no seed broker answered). */
  kafka: KafkaHealth | null | undefined;
  spool: SpoolDepth & { dir: string };
  /** Where the time went: the ledger's queries, and the consumer group's offsets. */
  timings: { databaseMs: number; kafkaMs: number };
}

/** Below this many source rows (the server's own estimate), status counts exactly unless told otherwise. */
export const EXACT_BELOW_ROWS = 1_000_000;

export interface StatusOptions {
  exact?: boolean;
  /** The caller's pool (kept open); by default one is opened for this report and closed. */
  pool?: Pool;
  /** Count the stale done tasks exactly (status --current): a pass over the done tasks unless the index says none. */
  current?: boolean;
  /** The caller's lag reader (a shared, cached admin client); by default one is made for this report. */
  lag?: (topic: string, groupId: string) => Promise<Record<string, number> | null>;
}

/**
 * Everything `status` shows, from the ledger, the consumer group and this machine's spool. `exact`: true
 * counts with the semi-join, false from the snapshot (ledger/count-snapshots.ts); unset, exact on a source
 * under EXACT_BELOW_ROWS rows.
 */
export async function collectStatus(
  config: SluiceConfig,
  name: string,
  log: Logger,
  opts: StatusOptions = {},
): Promise<StatusReport> {
  const pipeline = getPipeline(config, name);
  // A long-lived caller (the dashboard) lends its one pool; `status` opens its own for the one report.
  const pool = opts.pool ?? (await openPool(config.database, { poolSize: smallPool(config.database, 2) }));
  let ledger;
  let resources;
  let processes;
  let connections;
  let versions: StatusReport['versions'] = [];
  let staleTasks: number | null = null;
  const t0 = performance.now();
  let databaseMs = 0;
  try {
    await assertMigrated(pool);
    const src = await checkPipelineTables(pool, pipeline, { refuseMisfit: false });
    const exact = opts.exact ?? (await tableRowsGuess(pool, src.table)) < EXACT_BELOW_ROWS;
    ledger = await ledgerStatus(
      pool,
      src,
      name,
      config.producer.staleAfterMs,
      exact,
      pipeline.stages.map((s) => s.name),
    );
    ({ versions, staleTasks } = await stageVersionsOf(pool, src, pipeline, opts));
    const used = [...new Set(pipeline.stages.flatMap((s) => (s.resource === undefined ? [] : [s.resource])))];
    resources = await resourceStatus(pool, config.resources, used);
    processes = (await listProcesses(pool, name)).map((p) => ({ ...p, stale: p.ageSeconds > STALE_AFTER_S }));
    connections = await connectionsReport(pool, config.database.poolSize, processes);
    databaseMs = Math.round(performance.now() - t0);
  } finally {
    if (opts.pool === undefined) await pool.end();
  }
  const t1 = performance.now();
  const { groupId } = pipeline;
  const lag = await (opts.lag?.(pipeline.topic, groupId) ?? consumerLag(config.kafka, pipeline.topic, groupId, log));
  // A long-lived caller (the dashboard) passes its lag reader and does not ask the cluster on every refresh.
  const kafka = opts.lag === undefined ? await kafkaHealth(config.kafka, pipeline.topic, log) : undefined;
  const paths = spoolPaths(resolve(config.spool.dir), name);
  const spool = { dir: paths.root, ...(await spoolDepth(paths)) };
  const c = ledger.counts;
  return {
    pipeline: name,
    topic: pipeline.topic,
    table: pipeline.source.table,
    source: c.source,
    done: c.done,
    pending: c.pending,
    inFlight: c.inFlight,
    quarantined: c.quarantined,
    dead: c.quarantined,
    orphans: c.orphans,
    shared: c.shared,
    exact: c.exact,
    countedAt: c.countedAt,
    countAgeSeconds: Math.round(c.countAgeSeconds),
    stages: ledger.stages,
    versions,
    staleTasks,
    throughput: { resultsPerSecond: ledger.resultsPerSecond },
    errors: ledger.errors,
    badMessages: ledger.badMessages,
    resources,
    processes,
    connections,
    lag,
    kafka,
    spool,
    timings: { databaseMs, kafkaMs: Math.round(performance.now() - t1) },
  };
}

async function stageVersionsOf(
  pool: Pool,
  src: SourceInfo,
  pipeline: PipelineConfig,
  opts: StatusOptions,
): Promise<Pick<StatusReport, 'versions' | 'staleTasks'>> {
  const stages = stageVersions(pipeline);
  const versions: StatusReport['versions'] = await stageMix(pool, pipeline.name, stages);
  if (opts.current !== true) return { versions, staleTasks: null };
  // A task whose recompute is in flight is not current yet: every open request counts, however recent.
  const run = {
    pool,
    db: <T>(_what: string, fn: () => Promise<T>): Promise<T> => fn(),
    source: src,
    filter: { pipeline: pipeline.name, stages, includeOffline: false, staleAfterMs: null },
  };
  const groups = (await mayBeStale(pool, pipeline.name, stages, null)) ? await countStale(run) : [];
  for (const v of versions) v.staleTasks = groups.filter((g) => g.stage === v.stage).reduce((n, g) => n + g.tasks, 0);
  return { versions, staleTasks: groups.reduce((n, g) => n + g.tasks, 0) };
}

/** The --check --current verdict: every source row has a result, and none is stale. */
export function isCurrent(report: Pick<StatusReport, 'done' | 'source' | 'exact' | 'staleTasks'>): boolean {
  return isComplete(report) && report.staleTasks === 0;
}

/** The --check verdict: every source row has a result. Only an exact count can pass it. */
export function isComplete(report: Pick<StatusReport, 'done' | 'source' | 'exact'>): boolean {
  return report.exact && report.done === report.source;
}
