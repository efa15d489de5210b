// What a fetcher needs before it joins the consumer group: a database pool if the database is up (bad
// messages are recorded there; an outage is tolerated, a wrong configuration is not), the same source
// check as produce and work, a reachable broker and the pipeline's topic.

import type { PipelineConfig } from '../core/config.js';
import { DatabaseError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { inspectPipeline } from '../db/pipeline-tables.js';
import { usePool, type PoolUse } from '../db/pool.js';
import { checkKafka, createKafka } from '../kafka/client.js';
import { ensureTopic } from '../kafka/topics.js';
import type { Kafka } from 'kafkajs';
import type { FetchOptions } from './fetcher.js';

export async function openFetcherParts(opts: FetchOptions, pipeline: PipelineConfig, log: Logger): Promise<{ pool: PoolUse | null; kafka: Kafka }> {
  const { config } = opts;
  const pool = await openOptionalPool(opts, log);
  try {
    if (pool !== null) await inspectPipeline(pool.pool, pipeline, opts.pipeline);
    await checkKafka(config.kafka, log);
    const kafka = createKafka(config.kafka, opts.log.child({ component: 'kafka', pipeline: opts.pipeline }), {
      retry: { retries: config.kafka.retries, initialRetryTime: 300, maxRetryTime: 10_000 },
    });
    const admin = kafka.admin();
    await admin.connect();
    try {
      await ensureTopic(admin, pipeline.topic, pipeline.partitions, log);
    } finally {
      await admin.disconnect();
    }
    return { pool, kafka };
  } catch (err) {
    await pool?.release().catch(() => {});
    throw err;
  }
}

async function openOptionalPool(opts: FetchOptions, log: Logger): Promise<PoolUse | null> {
  try {
    return await usePool(opts.config.database, opts.pool);
  } catch (err) {
    // Only an outage is tolerated here; an unset or wrong configuration is not.
    if (!(err instanceof DatabaseError) || !err.retriable) throw err;
    log.warn({ err }, 'database unreachable: bad messages are recorded in the spool quarantine only');
    return null;
  }
}
