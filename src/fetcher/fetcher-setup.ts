// What a fetcher needs before it joins the consumer group: a database pool if the database is up (bad
// messages are recorded there; an outage is tolerated, a wrong configuration is not), the same source
// check as produce and work, a reachable broker and the pipeline's topic.

import { groupIdOf, type PipelineConfig, type SluiceConfig } from '../core/config.js';
import { ledgerId } from '../db/ledger-id.js';
import { claimNames, type Claim } from '../kafka/ledger-claims.js';
import { DatabaseError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { inspectPipeline } from '../db/pipeline-tables.js';
import { usePool, type PoolUse } from '../db/pool.js';
import { checkKafka, createKafka, kafkaRetry } from '../kafka/client.js';
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
    await admin.connect();
    try {
      await ensureTopic(admin, pipeline.topic, topicSpec(pipeline), log);
      if (ledger !== null) await claimNames(admin, ledger, fetcherClaims(config, opts.pipeline, pipeline), log);
      else log.warn({ topic: pipeline.topic }, 'database unreachable: the topic and group are not checked against other deployments (the worker still refuses their messages)');
    } finally {
      await admin.disconnect();
    }
    return { pool, kafka, ledger };
  } catch (err) {
    await pool?.release().catch(() => {});
    throw err;
  }
}

/** The names a fetcher uses: its pipeline's topic and its consumer group. */
export function fetcherClaims(config: SluiceConfig, name: string, pipeline: PipelineConfig): Claim[] {
  return [
    { kind: 'topic', name: pipeline.topic, setting: `pipelines.${name}.topic` },
    { kind: 'group', name: groupIdOf(config, name), setting: 'fetcher.groupId (SLUICE_FETCH_GROUP_ID)' },
  ];
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
