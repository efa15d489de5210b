// Consumer lag: messages on the topic that the pipeline's consumer group has not committed, per partition.

import type { Admin, Kafka } from 'kafkajs';
import type { KafkaConfig } from '../config/config.js';
import { childLogger, type Logger } from '../core/logger.js';
import { checkKafka, createKafka, quickRetry } from './client.js';

/**
 * Messages on `topic` the group has not committed, per partition (a partition never committed counts from its low
 * watermark).
 */
export async function lagOf(admin: Admin, topic: string, groupId: string): Promise<Record<string, number>> {
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
}

/** Messages not yet committed by the pipeline's consumer group, per partition; null when Kafka cannot be asked. */
export async function consumerLag(
  kafka: KafkaConfig,
  topic: string,
  groupId: string,
  log: Logger,
): Promise<Record<string, number> | null> {
  try {
    await checkKafka(kafka, log, 3000);
    const admin = createKafka(kafka, childLogger(log, { component: 'kafka' }), { retry: quickRetry(kafka) }).admin();
    await admin.connect();
    try {
      return await lagOf(admin, topic, groupId);
    } finally {
      await admin.disconnect();
    }
  } catch {
    return null;
  }
}

/** A long-lived process's one Kafka client and admin, lent to what it starts (the dashboard's requeue). */
export interface SharedKafka {
  readonly client: Kafka;
  /** The one admin client, connected when first asked and kept. */
  admin(): Promise<Admin>;
}

/**
 * Lag for a long-lived reader (the dashboard): one admin client, connected when first asked and kept, and each
 * topic's answer cached for `ttlMs`, so that any number of page refreshes costs one Kafka connection and a few
 * requests every few seconds. The same admin serves the process's other needs (SharedKafka).
 * States: idle -> connected -> closed.
 */
export class LagReader implements SharedKafka {
  state: 'idle' | 'connected' | 'closed' = 'idle';
  readonly client: Kafka;
  readonly #ttlMs: number;
  readonly #cache = new Map<string, { at: number; lag: Promise<Record<string, number> | null> }>();
  #admin: Admin | null = null;
  #connecting: Promise<Admin> | null = null;

  constructor(kafka: KafkaConfig, log: Logger, ttlMs = 5000) {
    this.client = createKafka(kafka, childLogger(log, { component: 'kafka' }), { retry: quickRetry(kafka) });
    this.#ttlMs = ttlMs;
  }

  admin(): Promise<Admin> {
    if (this.state === 'closed') return Promise.reject(new Error('the Kafka client is closed'));
    if (this.#admin !== null) return Promise.resolve(this.#admin);
    this.#connecting ??= (async () => {
      const admin = this.client.admin();
      try {
        await admin.connect();
      } finally {
        this.#connecting = null;
      }
      if (this.state === 'closed') {
        // Closed while connecting: nobody will disconnect it later, and an open socket keeps the process alive.
        await admin.disconnect().catch(() => {});
        throw new Error('the Kafka client is closed');
      }
      this.#admin = admin;
      this.state = 'connected';
      return admin;
    })();
    return this.#connecting;
  }

  read(topic: string, groupId: string): Promise<Record<string, number> | null> {
    const key = `${topic}\u0000${groupId}`;
    const hit = this.#cache.get(key);
    if (hit !== undefined && performance.now() - hit.at < this.#ttlMs) return hit.lag;
    const lag = this.#read(topic, groupId);
    this.#cache.set(key, { at: performance.now(), lag });
    return lag;
  }

  async #read(topic: string, groupId: string): Promise<Record<string, number> | null> {
    if (this.state === 'closed') return null;
    let admin: Admin | null = null;
    try {
      admin = await this.admin();
      return await lagOf(admin, topic, groupId);
    } catch {
      // The next read (after the cache time) connects afresh; only the admin that failed is dropped, not one
      // that another caller (a requeue) has connected since.
      if (admin !== null && admin === this.#admin) await this.#drop();
      return null;
    }
  }

  async #drop(): Promise<void> {
    const admin = this.#admin;
    this.#admin = null;
    if (this.state === 'connected') this.state = 'idle';
    await admin?.disconnect().catch(() => {});
  }

  async close(): Promise<void> {
    await this.#drop();
    this.state = 'closed';
  }
}
