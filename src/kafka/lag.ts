// Consumer lag: messages on the topic that the pipeline's consumer group has not committed, per partition.

import type { KafkaConfig } from '../core/config.js';
import type { Logger } from '../core/logger.js';
import { checkKafka, createKafka } from './client.js';

/** Messages not yet committed by the pipeline's consumer group, per partition; null when Kafka cannot be asked. */
export async function consumerLag(kafka: KafkaConfig, topic: string, groupId: string, log: Logger): Promise<Record<string, number> | null> {
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

