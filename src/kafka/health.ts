// How the cluster stands for one pipeline, as `doctor` and `status` show it: which seed brokers answer,
// how many brokers are live, and the topic's replication (replicas per partition, in-sync replicas,
// min.insync.replicas). And the warnings an operator should act on before a broker is lost.

import type { Admin } from 'kafkajs';
import type { KafkaConfig } from '../config/config.js';
import { childLogger, type Logger } from '../core/logger.js';
import { KafkaError } from '../core/errors.js';
import { checkKafka, createKafka, kafkaFailure, quickRetry, type KafkaCheck } from './client.js';
import { topicConfigs } from './topics.js';

export interface TopicReplication {
  partitions: number;
  /** The fewest replicas any partition has. */
  replicationFactor: number;
  /** Partitions with fewer in-sync replicas than replicas (a broker down or behind). */
  underReplicated: number;
  /** The topic's effective min.insync.replicas; null when it could not be read. */
  minInsyncReplicas: number | null;
  /** Brokers that hold replicas of the topic but are not live (down, or fenced), by node id. */
  downBrokers: number[];
}

export interface KafkaHealth {
  brokers: number;
  clusterId: string;
  seedsDown: Array<{ seed: string; error: string }>;
  /** null: the topic does not exist yet. */
  topic: TopicReplication | null;
}

export async function topicReplication(admin: Admin, topic: string): Promise<TopicReplication | null> {
  if (!(await admin.listTopics()).includes(topic)) return null;
  const [meta] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics;
  const parts = meta?.partitions ?? [];
  const live = new Set((await admin.describeCluster()).brokers.map((b) => b.nodeId));
  const downBrokers = [...new Set(parts.flatMap((p) => [...p.replicas, ...(p.offlineReplicas ?? [])]))]
    .filter((id) => !live.has(id))
    .sort((a, b) => a - b);
  const minIsr = Number((await topicConfigs(admin, topic, ['min.insync.replicas']))['min.insync.replicas']);
  return {
    partitions: parts.length,
    replicationFactor: parts.length === 0 ? 0 : Math.min(...parts.map((p) => p.replicas.length)),
    underReplicated: parts.filter((p) => p.isr.length < p.replicas.length).length,
    minInsyncReplicas: Number.isInteger(minIsr) && minIsr > 0 ? minIsr : null,
    downBrokers,
  };
}

export function seedsDown(check: KafkaCheck): KafkaHealth['seedsDown'] {
  return check.seeds.filter((s) => !s.ok).map((s) => ({ seed: s.seed, error: s.error ?? 'no answer' }));
}

/** The cluster and the topic as they stand; null when no seed broker answers. */
export async function kafkaHealth(
  cfg: KafkaConfig,
  topic: string,
  log: Logger,
  deadlineMs = 3000,
): Promise<KafkaHealth | null> {
  try {
    const check = await checkKafka(cfg, log, deadlineMs, { all: true });
    const admin = createKafka(cfg, childLogger(log, { component: 'kafka' }), { retry: quickRetry(cfg) }).admin();
    await admin.connect();
    try {
      return {
        brokers: check.brokers,
        clusterId: check.clusterId,
        seedsDown: seedsDown(check),
        topic: await topicReplication(admin, topic),
      };
    } finally {
      await admin.disconnect();
    }
  } catch (err) {
    // No seed answered: the report says so. Anything else (a bug, a refused request) is not hidden as that.
    if (err instanceof KafkaError && err.code === 'KAFKA_UNREACHABLE') return null;
    throw kafkaFailure(err, `could not read topic ${topic}`, 'check the brokers');
  }
}

/**
 * What is unsafe about the topic's replication on this cluster. sluice writes with acks=all, so
 * min.insync.replicas is how many copies a write is acknowledged with: 1 means an acknowledged write can be
 * lost with one broker.
 */
export function replicationWarnings(liveBrokers: number, t: TopicReplication): string[] {
  const warnings: string[] = [];
  // The cluster's size counts the brokers that are down too: the warning matters most then.
  const brokers = liveBrokers + t.downBrokers.length;
  if (t.downBrokers.length > 0)
    warnings.push(`broker(s) ${t.downBrokers.join(', ')} hold replicas of the topic and are down`);
  if (t.minInsyncReplicas !== null && t.minInsyncReplicas > t.replicationFactor) {
    warnings.push(
      `min.insync.replicas ${t.minInsyncReplicas} is above the ` +
        `topic's ${t.replicationFactor} replica(s): every write with acks=all ` +
        `fails (NOT_ENOUGH_REPLICAS); ` +
        `lower pipelines.<p>.minInsyncReplicas or add replicas`,
    );
  }
  if (brokers >= 3 && t.replicationFactor < 3) {
    warnings.push(
      `${t.replicationFactor} replica(s) per partition on a ` +
        `cluster of ${brokers} brokers: a broker lost is data lost or a pipeline ` +
        `stopped; recreate the ` +
        `topic with pipelines.<p>.replicationFactor: 3 (kafka-reassign-partitions ` +
        `can add replicas in place)`,
    );
  }
  if (t.replicationFactor > 1 && t.minInsyncReplicas === 1) {
    warnings.push(
      'min.insync.replicas 1 with acks=all: a write is acknowledged with one ' +
        'copy and lost with that broker; set pipelines.<p>.minInsyncReplicas: 2 ' +
        '(kafka-configs --alter --add-config min.insync.replicas=2 on an existing topic)',
    );
  }
  if (t.underReplicated > 0)
    warnings.push(
      `${t.underReplicated} of ${t.partitions} partition(s) have fewer in-sync replicas than replicas (a broker is ` +
        `down or behind)`,
    );
  return warnings;
}
