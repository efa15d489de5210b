// What a fetcher needs before it joins the consumer group: a database pool if the database is up (bad
// messages are recorded there; an outage is tolerated, a wrong configuration is not), the same source
// check as produce and work, a reachable broker and the pipeline's topic.

import type { PipelineConfig } from '../core/config.js';
import { ledgerId } from '../db/ledger-id.js';
import { claimNames, pipelineClaims } from '../kafka/ledger-claims.js';
import { DatabaseError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { inspectPipeline } from '../db/pipeline-tables.js';
import { usePool, type PoolUse } from '../db/pool.js';
import { checkKafka, createKafka, kafkaFailure, kafkaRetry, retryKafka } from '../kafka/client.js';
import { run } from '../core/hints.js';
import { ensureTopic, topicSpec } from '../kafka/topics.js';
import type { Kafka } from 'kafkajs';
import type { FetchOptions } from './fetcher.js';

export async function openFetcherParts(opts: FetchOptions, pipeline: PipelineConfig, log: Logger): Promise<{ pool: PoolUse | null; kafka: Kafka; ledger: string | null }> {
  const { config } = opts;
  const pool = await openOptionalPool(opts, log);
  try {
    if (pool !== null) await inspectPipeline(pool.pool, pipeline, opts.pipeline);
    const ledger = pool === null ? null : await ledgerId(pool.pool);
    await checkKafka(config.kafka, log);
    const kafka = createKafka(config.kafka, opts.log.child({ component: 'kafka', pipeline: opts.pipeline }), { retry: kafkaRetry(config.kafka, config.kafka.brokers.length) });
    const admin = kafka.admin();
    try {
      await admin.connect();
      if (ledger === null) log.warn({ topic: pipeline.topic }, 'database unreachable: the topic and group are not checked against other deployments (the worker still refuses their messages)');
      await retryKafka(config.kafka, async () => {
        if (ledger !== null) await claimNames(admin, ledger, pipelineClaims(config, opts.pipeline, pipeline), log);
        await ensureTopic(admin, pipeline.topic, topicSpec(pipeline), log);
      }, log, 'prepare topic');
    } catch (err) {
      throw kafkaFailure(err, `could not prepare topic ${pipeline.topic}`, `check the brokers (${run('services', 'status')}) and run fetch again`);
    } finally {
      await admin.disconnect().catch(() => {});
    }
    return { pool, kafka, ledger };
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
