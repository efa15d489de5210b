// kafkajs is CommonJS and ConfigResourceTypes is not among the exports Node detects: read it off the default.
// Topics are created by sluice with the pipeline's partition count (the local broker does not auto-create
// them: an auto-created topic would silently get one partition and serialise the whole pipeline).

import kafkajs, { type Admin } from 'kafkajs';
import type { Logger } from '../core/logger.js';

/** Kafka's default max.message.bytes (1 MiB + 12); a record batch larger than the topic's value is refused. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1048588;

export async function ensureTopic(admin: Admin, topic: string, partitions: number, log: Logger): Promise<{ created: boolean; partitions: number }> {
  // Asking first keeps kafkajs from logging the broker's "already exists" answer as an error on every run.
  const exists = (await admin.listTopics()).includes(topic);
  const created = !exists && (await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true }));
  if (created) {
    log.info({ topic, partitions }, 'topic created');
    return { created, partitions };
  }
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  const actual = meta.topics[0]?.partitions.length ?? 0;
  if (actual !== partitions) {
    log.warn({ topic, partitions: actual, configured: partitions }, 'topic exists with another partition count; using it as it is');
  }
  return { created, partitions: actual };
}

/** The topic's max.message.bytes: the largest record batch the broker accepts for it. */
export async function topicMaxMessageBytes(admin: Admin, topic: string): Promise<number> {
  try {
    const r = await admin.describeConfigs({
      resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configNames: ['max.message.bytes'] }],
      includeSynonyms: false,
    });
    const v = Number(r.resources[0]?.configEntries.find((e) => e.configName === 'max.message.bytes')?.configValue);
    return Number.isFinite(v) && v > 0 ? v : DEFAULT_MAX_MESSAGE_BYTES;
  } catch {
    return DEFAULT_MAX_MESSAGE_BYTES;
  }
}
