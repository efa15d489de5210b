// What a fetcher needs before it joins the consumer group: a database pool if the database is up (bad
// messages are recorded there; an outage is tolerated, a wrong configuration is not), the same source
// check as produce and work, its ledger's id, a reachable broker, its claims and the pipeline's topic.

import type { PipelineConfig } from '../config/config.js';
import { ledgerId } from '../ledger/ledger-id.js';
import { claimNames, pipelineClaims } from '../kafka/ledger-claims.js';
import { DatabaseError } from '../core/errors.js';
import { childLogger, type Logger } from '../core/logger.js';
import { checkPipelineTables } from '../user-tables/pipeline-tables.js';
import { usePool, type PoolUse } from '../db/pool.js';
import { checkKafka, createKafka, kafkaFailure, kafkaRetry, retryKafka } from '../kafka/client.js';
import { run } from '../core/hints.js';
import { ensureTopic, topicSpec } from '../kafka/topics.js';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Kafka } from 'kafkajs';
import type { FetchOptions } from './options.js';

export async function openFetcherParts(
  opts: FetchOptions,
  pipeline: PipelineConfig,
  log: Logger,
  spoolRoot: string,
): Promise<{ pool: PoolUse | null; kafka: Kafka; ledger: string }> {
  const { config } = opts;
  const { pool, outage } = await openOptionalPool(opts, log);
  try {
    if (pool !== null) await checkPipelineTables(pool.pool, pipeline);
    const ledger = await knownLedger(pool, spoolRoot, outage);
    await checkKafka(config.kafka, log);
    const kafka = createKafka(config.kafka, childLogger(opts.log, { component: 'kafka', pipeline: opts.pipeline }), {
      retry: kafkaRetry(config.kafka, config.kafka.brokers.length),
    });
    const admin = kafka.admin();
    try {
      await admin.connect();
      await retryKafka(
        config.kafka,
        async () => {
          await claimNames(admin, ledger, pipelineClaims(pipeline), log, { client: kafka });
          await ensureTopic(admin, pipeline.topic, topicSpec(pipeline), log);
        },
        log,
        'prepare topic',
      );
    } catch (err) {
      throw kafkaFailure(
        err,
        `could not prepare topic ${pipeline.topic}`,
        `check the brokers (${run('services', 'status')}) and run fetch again`,
      );
    } finally {
      await admin.disconnect().catch(() => {});
    }
    return { pool, kafka, ledger };
  } catch (err) {
    await pool?.release().catch(() => {});
    throw err;
  }
}

async function openOptionalPool(
  opts: FetchOptions,
  log: Logger,
): Promise<{ pool: PoolUse | null; outage: DatabaseError | null }> {
  try {
    return { pool: await usePool(opts.config.database, opts.pool), outage: null };
  } catch (err) {
    // Only an outage is tolerated here; an unset or wrong configuration is not.
    if (!(err instanceof DatabaseError) || !err.retriable) throw err;
    log.warn({ err }, 'database unreachable: bad messages are recorded in the spool quarantine only');
    return { pool: null, outage: err };
  }
}

/**
 * The ledger this spool fetches for: read from the database and kept in the spool (`<spool>/ledger`), so
 * that a fetcher started while the database is down still knows whose messages to take and whose topic and
 * group it may join. A spool that never saw its ledger does not start without the database: it could join
 * another deployment's group and take its tasks.
 */
async function knownLedger(pool: PoolUse | null, spoolRoot: string, outage: DatabaseError | null): Promise<string> {
  const file = join(spoolRoot, 'ledger');
  if (pool !== null) {
    const id = await ledgerId(pool.pool);
    const kept = await readFile(file, 'utf8').catch(() => null);
    if (kept?.trim() !== id) await writeFile(file, `${id}\n`);
    return id;
  }
  const kept = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (kept !== '') return kept;
  throw new DatabaseError(
    outage?.code ?? 'DB_UNREACHABLE',
    `${outage?.message ?? 'database unreachable'}; this spool has not ` +
      `fetched for a ledger yet, so the fetcher waits for ` +
      `the database`,
    {
      retriable: true,
      hint: outage?.hint,
      cause: outage ?? undefined,
    },
  );
}
