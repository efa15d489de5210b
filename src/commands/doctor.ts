// `sluice doctor`: checks, in the order a new user trips over them, that configuration, database,
// migrations and Kafka are ready, and that a pipeline's source table has the configured columns.

import type { RowDataPacket } from 'mysql2/promise';
import type { PipelineConfig, SluiceConfig } from '../core/config.js';
import { DatabaseError, UnknownPipelineError } from '../core/errors.js';
import { redactUrl } from '../core/logger.js';
import { assertMigrated } from '../db/migrate.js';
import { openPool, type Pool } from '../db/pool.js';
import { checkKafka } from '../kafka/client.js';
import type { Command } from './command.js';

export function pipelineOrThrow(config: SluiceConfig, name: string): PipelineConfig {
  const p = config.pipelines[name];
  if (p === undefined) throw new UnknownPipelineError(name, Object.keys(config.pipelines));
  return p;
}

async function checkSource(pool: Pool, p: PipelineConfig): Promise<void> {
  const [schema, table] = p.source.table.includes('.') ? p.source.table.split('.') : [null, p.source.table];
  const [rows] = await pool.query<RowDataPacket[]>(
    'SELECT column_name AS name FROM information_schema.columns WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?',
    [schema, table],
  );
  const have = new Set(rows.map((r) => String(r.name).toLowerCase()));
  if (have.size === 0) {
    throw new DatabaseError('SOURCE_MISSING', `source table '${p.source.table}' does not exist`, {
      hint: 'check source.table in sluice.config.ts',
    });
  }
  const missing = [p.source.key, ...p.source.columns].filter((c) => !have.has(c.toLowerCase()));
  if (missing.length > 0) {
    throw new DatabaseError('SOURCE_COLUMNS', `source table '${p.source.table}' has no column(s) ${missing.join(', ')}`, {
      hint: 'check source.key and source.columns in sluice.config.ts',
    });
  }
}

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'check configuration, database, migrations and Kafka (and a pipeline, with --pipeline)',
  usage: '[--pipeline <name>]',
  options: { pipeline: { type: 'string' } },
  optionHelp: { pipeline: 'also check this pipeline: it exists and its source table has the configured columns' },
  async run({ config, configFile, log, out, values }) {
    const name = typeof values.pipeline === 'string' ? values.pipeline : undefined;
    const pipeline = name === undefined ? undefined : pipelineOrThrow(config, name);
    out(`ok  config      ${configFile ?? '(no config file: defaults and environment)'}`);
    const pool = await openPool(config.database, { poolSize: 1 });
    try {
      out(`ok  database    ${redactUrl(config.database.url)}`);
      await assertMigrated(pool);
      out('ok  migrations  all applied');
      if (pipeline !== undefined) {
        await checkSource(pool, pipeline);
        out(`ok  pipeline    ${name}: source ${pipeline.source.table}, topic ${pipeline.topic}`);
      }
    } finally {
      await pool.end();
    }
    const k = await checkKafka(config.kafka, log);
    out(`ok  kafka       ${config.kafka.brokers.join(',')} (${k.brokers} broker(s), cluster ${k.clusterId})`);
    return 0;
  },
};
