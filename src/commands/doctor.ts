// `sluice doctor`: checks, in the order a new user trips over them, that configuration, database,
// migrations and Kafka are ready, and that a pipeline's source table has the configured columns.

import { getPipeline } from '../config/config.js';
import { childLogger, redactUrl } from '../core/logger.js';
import { assertMigrated } from '../db/migrate.js';
import { openPool } from '../db/pool.js';
import { checkPipelineTables } from '../user-tables/pipeline-tables.js';
import { collisions, type Collisions } from '../user-tables/results-table.js';
import { SourceError } from '../core/errors.js';
import { fitMessage } from '../user-tables/key-fit.js';
import { keyColumns } from '../user-tables/key-shape.js';
import { ledgerId } from '../ledger/ledger-id.js';
import { checkKafka, createKafka, kafkaFailure, quickRetry, retryKafka, type KafkaCheck } from '../kafka/client.js';
import { replicationWarnings, seedsDown, topicReplication } from '../kafka/health.js';
import { claimNames, pipelineClaims } from '../kafka/ledger-claims.js';
import type { PipelineConfig, SluiceConfig } from '../config/config.js';
import type { Logger } from '../core/logger.js';
import type { Command } from './command.js';

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'check configuration, database, migrations and Kafka (and a pipeline, with --pipeline)',
  usage: '[--pipeline <name>]',
  options: { pipeline: { type: 'string' } },
  optionHelp: { pipeline: 'also check this pipeline: it exists and its source table has the configured columns' },
  async run({ config, configFile, log, out, values }) {
    const name = typeof values.pipeline === 'string' ? values.pipeline : undefined;
    const pipeline = name === undefined ? undefined : getPipeline(config, name);
    out(`ok  config      ${configFile ?? '(no config file: defaults and environment)'}`);
    const pool = await openPool(config.database, { poolSize: 1 });
    let ledger: string;
    try {
      out(`ok  database    ${redactUrl(config.database.url)}`);
      await assertMigrated(pool);
      out('ok  migrations  all applied');
      ledger = await ledgerId(pool);
      out(
        `ok  ledger      ${ledger} (this database's id on shared Kafka: in every message, and in the ` +
          `claims on its topics and groups)`,
      );
      if (pipeline !== undefined) {
        const src = await checkPipelineTables(pool, pipeline, { refuseMisfit: false });
        out(
          `ok  ` +
            `pipeline    ${name}: source ${pipeline.source.table} (` +
            `${src.keyKind} key ${keyColumns(src.key).join(', ')}), topic ${pipeline.topic}`,
        );
        const r = src.results;
        if (r !== undefined) {
          const c = r.merging === null ? null : await collisions(pool, src, r);
          const today = c === null ? '' : ` (${collisionText(c)})`;
          if (r.merging !== null && (r.merging.class === 'cuts' || !r.mergeKeys)) {
            const part = r.merging.part ?? 0;
            const { message, hint } = fitMessage(
              r.merging,
              { table: src.table, col: src.parts[part]!.meta },
              { table: r.table, col: r.parts[part]!.meta },
            );
            throw new SourceError(
              r.merging.class === 'merges' ? 'RESULTS_KEY_MERGES' : 'RESULTS_KEY_CUTS',
              `pipelines.${name}.results.key: ${message}${today}`,
              { hint },
            );
          }
          out(
            `ok  results     ${r.table}.${keyColumns(r.key).join(', ')} (unique, ${r.keyKind}), ` +
              `columns ${r.columns.join(', ')}, on conflict ${r.onConflict}`,
          );
          if (r.merging !== null)
            out(
              `warn results    ${r.table}.${keyColumns(r.key).join(', ')} ${r.merging.why}; ` +
                `results.mergeKeys accepts that: source rows that share a result row ` +
                `are done by it${today}`,
            );
        }
      }
    } finally {
      await pool.end();
    }
    const k = await checkKafka(config.kafka, log, 4000, { all: true });
    out(
      `ok  kafka       ${config.kafka.brokers.join(',')} (${k.brokers} live ` +
        `broker(s): ${k.live.map((b) => b.nodeId).join(', ')}; ` +
        `cluster ${k.clusterId})`,
    );
    for (const d of seedsDown(k)) out(`warn kafka       seed broker ${d.seed} is down (${d.error}); the others serve`);
    if (pipeline !== undefined && name !== undefined)
      await checkPipelineKafka(config, name, pipeline, ledger, k, log, out);
    else await checkAllClaims(config, ledger, log, out);
    return 0;
  },
};

/** What the source holds today that the result key column would merge or cut. */
function collisionText(c: Collisions): string {
  const parts = [
    c.keys === 0
      ? 'no source keys collide today'
      : `${c.keys} source key(s) collide today, e.g. ${c.example.map((k) => JSON.stringify(k)).join(' and ')}`,
  ];
  if (c.cut > 0) parts.push(`${c.cut} cannot be stored as they are, e.g. ${JSON.stringify(c.cutExample)}`);
  return parts.join('; ');
}

/** The pipeline's topic and group: not another ledger's (throws KAFKA_OTHER_LEDGER, exit 2), and replicated. */
async function checkPipelineKafka(
  config: SluiceConfig,
  name: string,
  pipeline: PipelineConfig,
  ledger: string,
  k: KafkaCheck,
  log: Logger,
  out: (line: string) => void,
): Promise<void> {
  const admin = createKafka(config.kafka, childLogger(log, { component: 'kafka' }), {
    retry: quickRetry(config.kafka),
  }).admin();
  try {
    await admin.connect();
    const claims = pipelineClaims(pipeline);
    const t = await retryKafka(
      config.kafka,
      async () => {
        await claimNames(admin, ledger, claims, log, { check: true });
        return topicReplication(admin, pipeline.topic);
      },
      log,
      'doctor',
    );
    out(`ok  claims      ${claims.map((c) => `${c.kind} ${c.name}`).join(', ')}: no other ledger uses them`);
    if (t === null) {
      out(`ok  topic       ${pipeline.topic} does not exist yet: produce or fetch creates it (${topicWill(pipeline)})`);
      return;
    }
    out(
      `ok  topic       ${pipeline.topic}: ${t.partitions} partition(s), ` +
        `replication factor ${t.replicationFactor}, ` +
        `min.insync.replicas ${t.minInsyncReplicas ?? '?'}`,
    );
    for (const w of replicationWarnings(k.brokers, t))
      out(`warn topic       ${pipeline.topic}: ${w.replace('<p>', name)}`);
  } catch (err) {
    throw kafkaFailure(err, `could not check topic ${pipeline.topic}`, 'check the brokers and run doctor again');
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** Without --pipeline: every configured pipeline's topic and group are this ledger's to use. */
async function checkAllClaims(
  config: SluiceConfig,
  ledger: string,
  log: Logger,
  out: (line: string) => void,
): Promise<void> {
  const claims = Object.values(config.pipelines).flatMap((p) => pipelineClaims(p));
  if (claims.length === 0) return;
  const admin = createKafka(config.kafka, childLogger(log, { component: 'kafka' }), {
    retry: quickRetry(config.kafka),
  }).admin();
  try {
    await admin.connect();
    await retryKafka(config.kafka, () => claimNames(admin, ledger, claims, log, { check: true }), log, 'doctor');
    out(
      `ok  claims      ${claims.length} topic and group ` +
        `name(s) of ${Object.keys(config.pipelines).length} pipeline(s): no ` +
        `other ledger uses them`,
    );
  } catch (err) {
    throw kafkaFailure(err, 'could not check the claims', 'check the brokers and run doctor again');
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

const topicWill = (p: PipelineConfig): string =>
  `${p.partitions} partitions, ` +
  `replication factor ${p.replicationFactor ?? "the cluster's default"}, ` +
  `min.insync.replicas ${p.minInsyncReplicas ?? "the cluster's default"}`;
