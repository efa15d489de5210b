// What `status` (and the demo's closing report) shows, collected in one place: the ledger's exact counts,
// per-stage progress and recent errors, the consumer group's lag and this machine's spool.

import { resolve } from 'node:path';
import { getPipeline, type SluiceConfig } from '../core/config.js';
import type { Logger } from '../core/logger.js';
import { assertMigrated } from '../db/migrate.js';
import { inspectPipeline } from '../db/pipeline-tables.js';
import { openPool } from '../db/pool.js';
import { STALE_AFTER_S } from '../core/heartbeat.js';
import { listProcesses } from '../db/processes.js';
import { resourceStatus } from '../db/resources-status.js';
import { ledgerStatus } from '../db/status.js';
import { consumerLag } from '../kafka/lag.js';
import { spoolDepth } from '../spool/depth.js';
import { spoolPaths } from '../spool/layout.js';

export type StatusReport = Awaited<ReturnType<typeof collectStatus>>;

/** Everything `status` shows, from the ledger, the consumer group and this machine's spool. */
export async function collectStatus(config: SluiceConfig, name: string, log: Logger, opts: { exact?: boolean } = {}) {
  const pipeline = getPipeline(config, name);
  const pool = await openPool(config.database, { poolSize: 2 });
  let ledger;
  let resources;
  let processes;
  try {
    await assertMigrated(pool);
    ledger = await ledgerStatus(pool, await inspectPipeline(pool, pipeline, name), name, config.producer.staleAfterMs, opts.exact !== false, pipeline.stages.at(-1)?.name);
    const used = [...new Set(pipeline.stages.flatMap((s) => (s.resource === undefined ? [] : [s.resource])))];
    resources = await resourceStatus(pool, config.resources, used);
    processes = (await listProcesses(pool, name)).map((p) => ({ ...p, stale: p.ageSeconds > STALE_AFTER_S }));
  } finally {
    await pool.end();
  }
  const lag = await consumerLag(config.kafka, pipeline.topic, config.fetcher.groupId ?? `sluice.${name}`, log);
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
    exact: c.exact,
    stages: ledger.stages,
    throughput: { resultsPerSecond: ledger.resultsPerSecond },
    errors: ledger.errors,
    badMessages: ledger.badMessages,
    resources,
    processes,
    lag,
    spool,
  };
}

/** The --check verdict: every source row has a result. Only an exact count can pass it. */
export function isComplete(report: Pick<StatusReport, 'done' | 'source' | 'exact'>): boolean {
  return report.exact && report.done === report.source;
}
