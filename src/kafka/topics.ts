// kafkajs is CommonJS and ConfigResourceTypes is not among the exports Node detects: read it off the default.
// Topics are created by sluice with the pipeline's partition count (the local broker does not auto-create
// them: an auto-created topic would silently get one partition and serialise the whole pipeline), and with
// its replication factor and min.insync.replicas when the pipeline sets them (else the cluster's defaults).

import kafkajs, { type Admin } from 'kafkajs';
import type { PipelineConfig } from '../config/config.js';
import type { Logger } from '../core/logger.js';

/** Kafka's default max.message.bytes (1 MiB + 12); a record batch larger than the topic's value is refused. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1048588;

/** How sluice creates a pipeline's topic. */
export interface TopicSpec {
  partitions: number;
  replicationFactor?: number;
  minInsyncReplicas?: number;
}

export function topicSpec(
  p: Pick<PipelineConfig, 'partitions' | 'replicationFactor' | 'minInsyncReplicas'>,
): TopicSpec {
  return { partitions: p.partitions, replicationFactor: p.replicationFactor, minInsyncReplicas: p.minInsyncReplicas };
}

export async function ensureTopic(
  admin: Admin,
  topic: string,
  spec: TopicSpec,
  log: Logger,
): Promise<{ created: boolean; partitions: number }> {
  // Asking first keeps kafkajs from logging the broker's "already exists" answer as an error on every run.
  const exists = (await admin.listTopics()).includes(topic);
  const configEntries =
    spec.minInsyncReplicas === undefined
      ? []
      : [{ name: 'min.insync.replicas', value: String(spec.minInsyncReplicas) }];
  const created =
    !exists &&
    (await admin.createTopics({
      topics: [
        { topic, numPartitions: spec.partitions, replicationFactor: spec.replicationFactor ?? -1, configEntries },
      ],
      waitForLeaders: true,
    }));
  if (created) {
    log.info(
      {
        topic,
        partitions: spec.partitions,
        replicationFactor: spec.replicationFactor ?? 'cluster default',
        minInsyncReplicas: spec.minInsyncReplicas ?? 'cluster default',
      },
      'topic created',
    );
    return { created, partitions: spec.partitions };
  }
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  const partitions = meta.topics[0]?.partitions ?? [];
  if (partitions.length !== spec.partitions) {
    log.warn(
      { topic, partitions: partitions.length, configured: spec.partitions },
      'topic exists with another partition count; using it as it is',
    );
  }
  const replicas =
    spec.replicationFactor === undefined ? undefined : Math.min(...partitions.map((p) => p.replicas.length));
  if (replicas !== undefined && partitions.length > 0 && replicas !== spec.replicationFactor) {
    log.warn(
      { topic, replicationFactor: replicas, configured: spec.replicationFactor },
      'topic exists with another replication factor; using it as it is (kafka-reassign-partitions changes it)',
    );
  }
  if (spec.minInsyncReplicas !== undefined) {
    const minIsr = Number((await topicConfigs(admin, topic, ['min.insync.replicas']))['min.insync.replicas']);
    if (Number.isInteger(minIsr) && minIsr !== spec.minInsyncReplicas) {
      log.warn(
        { topic, minInsyncReplicas: minIsr, configured: spec.minInsyncReplicas },
        'topic exists with another min.insync.replicas; using it as it is (kafka-configs --alter changes it)',
      );
    }
  }
  return { created, partitions: partitions.length };
}

/** The topic's max.message.bytes: the largest record batch the broker accepts for it. */
export async function topicMaxMessageBytes(admin: Admin, topic: string): Promise<number> {
  const v = Number((await topicConfigs(admin, topic, ['max.message.bytes']))['max.message.bytes']);
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_MAX_MESSAGE_BYTES;
}

/** Some of a topic's effective configuration values ({} when they cannot be read). */
export async function topicConfigs(admin: Admin, topic: string, names: string[]): Promise<Record<string, string>> {
  try {
    const r = await admin.describeConfigs({
      resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configNames: names }],
      includeSynonyms: false,
    });
    return Object.fromEntries((r.resources[0]?.configEntries ?? []).map((e) => [e.configName, e.configValue]));
  } catch {
    return {};
  }
}
