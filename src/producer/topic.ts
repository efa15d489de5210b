// The Kafka side of a produce run before it sends: a client of its own (the CLI) or the process's (the
// dashboard), the ledger's claim on the topic, the topic made sure of, and the batch limit its
// max.message.bytes allows.

import type { PipelineConfig, SluiceConfig } from '../config/config.js';
import { run } from '../core/hints.js';
import { childLogger, type Logger } from '../core/logger.js';
import { checkKafka, createKafka, kafkaFailure, retryKafka } from '../kafka/client.js';
import type { SharedKafka } from '../kafka/lag.js';
import { claimNames, pipelineClaims } from '../kafka/ledger-claims.js';
import { ensureTopic, topicMaxMessageBytes, topicSpec } from '../kafka/topics.js';

/** Record-batch header (61 bytes) plus slack: the batch limit must stay under the topic's max.message.bytes. */
const BATCH_HEADROOM = 128;

/**
 * A produce run of its own (the CLI): checks the brokers answer, then makes a client whose admin lives for one call.
 */
export async function ownKafka(config: SluiceConfig, pipelineName: string, log: Logger): Promise<SharedKafka> {
  await checkKafka(config.kafka, log);
  const client = createKafka(config.kafka, childLogger(log, { component: 'kafka', pipeline: pipelineName }));
  return { client, admin: () => Promise.resolve(client.admin()) };
}

export interface TopicTarget {
  config: SluiceConfig;
  pipelineName: string;
  pipeline: PipelineConfig;
  ledger: string;
  /** Whether the client is the run's own: its admin is connected and disconnected here. */
  own: boolean;
}

/** Makes sure the topic exists; returns its partition count and the batch limit its max.message.bytes allows. */
export async function prepareTopic(
  kafka: SharedKafka,
  t: TopicTarget,
  log: Logger,
): Promise<{ batchLimitBytes: number; partitions: number }> {
  const { config, pipeline } = t;
  const admin = await kafka.admin();
  try {
    if (t.own) await admin.connect();
    // Claimed first: a deployment refused here has not touched the other one's topic. The group is checked
    // but left to the fetchers to claim (produce never joins it).
    return await retryKafka(
      config.kafka,
      async () => {
        await claimNames(admin, t.ledger, pipelineClaims(pipeline), log, { client: kafka.client, write: ['topic'] });
        const { partitions } = await ensureTopic(admin, pipeline.topic, topicSpec(pipeline), log);
        const batchLimitBytes = Math.min(
          config.producer.batchBytes,
          (await topicMaxMessageBytes(admin, pipeline.topic)) - BATCH_HEADROOM,
        );
        return { partitions, batchLimitBytes };
      },
      log,
      'prepare topic',
    );
  } catch (err) {
    throw kafkaFailure(
      err,
      `could not prepare topic ${pipeline.topic}`,
      `check the brokers (${run('doctor')}) and run produce again; nothing was published`,
    );
  } finally {
    if (t.own) await admin.disconnect();
  }
}
