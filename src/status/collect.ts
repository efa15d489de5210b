// What `status` (and the demo's closing report) shows, collected in one place: the ledger's exact counts,
// per-stage progress and recent errors, the consumer group's lag and this machine's spool.

import { resolve } from 'node:path';
import { getPipeline, groupIdOf, type SluiceConfig } from '../core/config.js';
import type { Logger } from '../core/logger.js';
import { assertMigrated } from '../db/migrate.js';
import { inspectPipeline } from '../db/pipeline-tables.js';
import { splitTable } from '../db/source.js';
import type { RowDataPacket } from 'mysql2/promise';
import { openPool, smallPool, type Pool } from '../db/pool.js';
import { connectionsReport } from '../db/connections.js';
import { STALE_AFTER_S } from '../core/heartbeat.js';
import { listProcesses } from '../db/processes.js';
import { resourceStatus } from '../db/resources-status.js';
import { ledgerStatus } from '../db/status.js';
import { kafkaHealth } from '../kafka/health.js';
import { consumerLag } from '../kafka/lag.js';
import { spoolDepth } from '../spool/depth.js';
import { spoolPaths } from '../spool/layout.js';

export type StatusReport = Awaited<ReturnType<typeof collectStatus>>;

/** Below this many source rows (the server's own estimate), status counts exactly unless told otherwise. */
export const EXACT_BELOW_ROWS = 1_000_000;

export interface StatusOptions {
  exact?: boolean;
  /** The caller's pool (kept open); by default one is opened for this report and closed. */
  pool?: Pool;
  /** The caller's lag reader (a shared, cached admin client); by default one is made for this report. */
  lag?: (topic: string, groupId: string) => Promise<Record<string, number> | null>;
}

/**
 * Everything `status` shows, from the ledger, the consumer group and this machine's spool. `exact`: true
 * counts with the semi-join, false from the snapshot (db/count-snapshots.ts); unset, exact on a source
 * under EXACT_BELOW_ROWS rows.
 */
export async function collectStatus(config: SluiceConfig, name: string, log: Logger, opts: StatusOptions = {}) {
  const pipeline = getPipeline(config, name);
  // A long-lived caller (the dashboard) lends its one pool; `status` opens its own for the one report.
  const pool = opts.pool ?? (await openPool(config.database, { poolSize: smallPool(config.database, 2) }));
  let ledger;
  let resources;
  let processes;
  let connections;
  const t0 = performance.now();
  let databaseMs = 0;
  try {
    await assertMigrated(pool);
    const src = await inspectPipeline(pool, pipeline, name, { refuseMisfit: false });
    const exact = opts.exact ?? (await tableRowsGuess(pool, src.table)) < EXACT_BELOW_ROWS;
    ledger = await ledgerStatus(pool, src, name, config.producer.staleAfterMs, exact, pipeline.stages.map((s) => s.name));
    const used = [...new Set(pipeline.stages.flatMap((s) => (s.resource === undefined ? [] : [s.resource])))];
    resources = await resourceStatus(pool, config.resources, used);
    processes = (await listProcesses(pool, name)).map((p) => ({ ...p, stale: p.ageSeconds > STALE_AFTER_S }));
    connections = await connectionsReport(pool, config.database.poolSize, processes);
    databaseMs = Math.round(performance.now() - t0);
  } finally {
    if (opts.pool === undefined) await pool.end();
  }
  const t1 = performance.now();
  const groupId = groupIdOf(config, name);
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
    dead: c.dead,
    orphans: c.orphans,
    /** Done source rows whose result row another source row shares (results.mergeKeys). */
    shared: c.shared,
    exact: c.exact,
    countedAt: c.countedAt,
    countAgeSeconds: Math.round(c.countAgeSeconds),
    stages: ledger.stages,
    throughput: { resultsPerSecond: ledger.resultsPerSecond },
    errors: ledger.errors,
    badMessages: ledger.badMessages,
    resources,
    processes,
    /** Database connections sluice holds now (README "Connections"). */
    connections,
    lag,
    /** Brokers and the topic's replication (undefined: not asked; null: no seed broker answered). */
    kafka,
    spool,
    /** Where the time went: the ledger's queries, and the consumer group's offsets. */
    timings: { databaseMs, kafkaMs: Math.round(performance.now() - t1) },
  };
}

/** The server's estimate of a table's rows (information_schema): enough to tell 10k from 10M, instantly. */
async function tableRowsGuess(pool: Pool, table: string): Promise<number> {
  const [schema, name] = splitTable(table);
  const [[r]] = await pool.query<RowDataPacket[]>('SELECT TABLE_ROWS AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?', [schema, name]);
  return Number(r?.n ?? 0);
}

/** The --check verdict: every source row has a result. Only an exact count can pass it. */
export function isComplete(report: Pick<StatusReport, 'done' | 'source' | 'exact'>): boolean {
  return report.exact && report.done === report.source;
}
