// `sluice status --pipeline <name>` (npm run status): what is done, pending, in flight and quarantined,
// per-stage progress, recent errors, consumer lag and this machine's spool, at a glance.

import { resolve } from 'node:path';
import { getPipeline } from '../core/config.js';
import { UsageError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { assertMigrated } from '../db/migrate.js';
import { openPool } from '../db/pool.js';
import { inspectPipeline } from '../db/pipeline-tables.js';
import { ledgerStatus } from '../db/status.js';
import { checkKafka, createKafka } from '../kafka/client.js';
import { spoolDepth } from '../spool/depth.js';
import { spoolPaths } from '../spool/layout.js';
import type { Command } from './command.js';
import type { KafkaConfig, SluiceConfig } from '../core/config.js';

/** Messages not yet committed by the pipeline's consumer group, per partition; null when Kafka cannot be asked. */
async function consumerLag(kafka: KafkaConfig, topic: string, groupId: string, log: Logger): Promise<Record<string, number> | null> {
  try {
    await checkKafka(kafka, log, 3000);
    const admin = createKafka(kafka, log.child({ component: 'kafka' }), { retry: { retries: 0 } }).admin();
    await admin.connect();
    try {
      if (!(await admin.listTopics()).includes(topic)) return {};
      const high = await admin.fetchTopicOffsets(topic);
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      const at = new Map((committed?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
      const lag: Record<string, number> = {};
      for (const p of high) {
        const c = at.get(p.partition) ?? -1n;
        lag[String(p.partition)] = Number(BigInt(p.high) - (c < 0n ? BigInt(p.low) : c));
      }
      return lag;
    } finally {
      await admin.disconnect();
    }
  } catch {
    return null;
  }
}

const bar = (frac: number, width = 30): string => `[${'#'.repeat(Math.round(frac * width)).padEnd(width, '-')}] ${(frac * 100).toFixed(1)}%`;

export type StatusReport = Awaited<ReturnType<typeof collectStatus>>;

/** Everything `status` shows, from the ledger, the consumer group and this machine's spool. */
export async function collectStatus(config: SluiceConfig, name: string, log: Logger, opts: { exact?: boolean } = {}) {
  const pipeline = getPipeline(config, name);
  const pool = await openPool(config.database, { poolSize: 2 });
  let ledger;
  try {
    await assertMigrated(pool);
    ledger = await ledgerStatus(pool, await inspectPipeline(pool, pipeline, name), name, config.producer.staleAfterMs, opts.exact !== false, pipeline.stages.at(-1)?.name);
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
    lag,
    spool,
  };
}

/** The --check verdict: every source row has a result. Only an exact count can pass it. */
export function isComplete(report: Pick<StatusReport, 'done' | 'source' | 'exact'>): boolean {
  return report.exact && report.done === report.source;
}

/** The human-readable table. */
export function renderStatus(report: StatusReport, out: (line: string) => void): void {
  out(`pipeline ${report.pipeline}  (topic ${report.topic}, source ${report.table})`);
  const est = report.exact ? '' : ' (estimate: --estimate reads the ledger tables only)';
  out(`  ${bar(report.source === 0 ? 1 : report.done / report.source)}  ${report.done} of ${report.source} done${est}, ${report.throughput.resultsPerSecond.toFixed(1)}/s recently`);
  out(`  pending ${report.pending}   in flight ${report.inFlight}   quarantined ${report.dead}   bad messages ${report.badMessages}`);
  if (report.orphans > 0) out(`  results without a source row ${report.orphans} (not counted as done)`);
  for (const s of report.stages) out(`  stage ${s.stage.padEnd(16)} ${String(s.milestones).padStart(10)} done   ${s.perSecond.toFixed(1)}/s`);
  for (const e of report.errors) out(`  error ${e.errorClass.padEnd(20)} x${e.count}  last ${e.lastAt}  e.g. ${e.example}`);
  const lag = report.lag;
  out(`  consumer lag ${lag === null ? 'unknown (Kafka unreachable)' : Object.entries(lag).map(([p, n]) => `p${p}:${n}`).join(' ') || 'none'}`);
  const spool = report.spool;
  out(`  spool on this machine: ${spool.items} item(s) in ${spool.readySegments} ready + ${spool.claimedSegments} claimed segment(s), ${spool.dir}`);
}

export const statusCommand: Command = {
  name: 'status',
  summary: 'done, pending, in flight and quarantined tasks, stage progress, errors, consumer lag, spool depth',
  usage: '--pipeline <name> [--json] [--check] [--estimate]',
  details: [
    '--check exits 1 while any source row has no result (pending, in flight or quarantined): a gate for cron or CI.',
    'Counts are exact (a semi-join of the source with the results); --estimate reads the ledger tables only.',
  ],
  options: { pipeline: { type: 'string', short: 'p' }, json: { type: 'boolean' }, check: { type: 'boolean' }, estimate: { type: 'boolean' } },
  optionHelp: {
    pipeline: 'the pipeline (required)',
    json: 'print one JSON object',
    check: 'exit 1 unless every source row has a result (always exact)',
    estimate: 'cheap counts from the ledger tables, for very large sources (not with --check)',
  },
  async run({ values, config, log, out }) {
    const name = values.pipeline;
    if (typeof name !== 'string') throw new UsageError('--pipeline is required', 'see: sluice status --help');
    if (values.check === true && values.estimate === true) throw new UsageError('--check needs exact counts; leave out --estimate', 'see: sluice status --help');
    const report = await collectStatus(config, name, log, { exact: values.estimate !== true });
    if (values.json === true) out(JSON.stringify(report));
    else renderStatus(report, out);
    return values.check === true && !isComplete(report) ? 1 : 0;
  },
};
