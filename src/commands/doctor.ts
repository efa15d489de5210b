// `sluice doctor`: checks, in the order a new user trips over them, that configuration, database,
// migrations and Kafka are ready, and that a pipeline's source table has the configured columns.

import { getPipeline } from '../core/config.js';
import { redactUrl } from '../core/logger.js';
import { assertMigrated } from '../db/migrate.js';
import { openPool } from '../db/pool.js';
import { inspectPipeline } from '../db/pipeline-tables.js';
import { mergedKeys } from '../db/results-table.js';
import { checkKafka } from '../kafka/client.js';
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
    try {
      out(`ok  database    ${redactUrl(config.database.url)}`);
      await assertMigrated(pool);
      out('ok  migrations  all applied');
      if (pipeline !== undefined) {
        const src = await inspectPipeline(pool, pipeline, name ?? '');
        out(`ok  pipeline    ${name}: source ${pipeline.source.table} (${src.keyKind} key ${src.key}), topic ${pipeline.topic}`);
        const r = src.results;
        if (r !== undefined) {
          out(`ok  results     ${r.table}.${r.key} (unique, ${r.keyKind}), columns ${r.columns.join(', ')}, on conflict ${r.onConflict}`);
          const merged = await mergedKeys(pool, r, src.table, src.key);
          if (merged > 0) {
            out(
              `warn results    ${r.table}.${r.key} uses ${r.collation}, under which ${merged} source keys that differ (by case or trailing spaces) are one key: ` +
                `their results would collide. Give the column a binary no-pad collation (MariaDB: ${r.charset ?? 'utf8mb4'}_nopad_bin, MySQL 8: utf8mb4_0900_bin) or make it VARBINARY`,
            );
          }
        }
      }
    } finally {
      await pool.end();
    }
    const k = await checkKafka(config.kafka, log);
    out(`ok  kafka       ${config.kafka.brokers.join(',')} (${k.brokers} broker(s), cluster ${k.clusterId})`);
    return 0;
  },
};
