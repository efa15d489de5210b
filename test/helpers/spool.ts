// Reading a spool folder back in tests, and publishing raw messages.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel, Partitioners, type Message } from 'kafkajs';
import { parseClaimedName } from '../../src/spool/layout.js';
import { decodeItems, type SpoolItem } from '../../src/spool/segment.js';
import { BROKERS } from './kafka.js';

/** Every item in ready/ and claimed/ of a pipeline's spool. */
export function spooledItems(root: string): SpoolItem[] {
  const items: SpoolItem[] = [];
  for (const dir of ['ready', 'claimed']) {
    let names: string[] = [];
    try {
      names = readdirSync(join(root, dir));
    } catch {
      continue;
    }
    for (const n of names) {
      if (dir === 'claimed' && parseClaimedName(n) === null) continue;
      items.push(...decodeItems(readFileSync(join(root, dir, n), 'utf8')));
    }
  }
  return items;
}

export const offsetKey = (i: { partition: number; offset: string }): string => `${i.partition}:${i.offset}`;

export async function createTopic(topic: string, partitions: number, brokers = BROKERS): Promise<void> {
  const admin = new Kafka({ clientId: 'sluice-test', brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

/** Publishes messages as they are (anything a plain Kafka client could write). */
export async function publishRaw(topic: string, messages: Message[], brokers = BROKERS): Promise<void> {
  const producer = new Kafka({ clientId: 'sluice-test', brokers, logLevel: logLevel.NOTHING }).producer({
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += 1000)
      await producer.send({ topic, messages: messages.slice(i, i + 1000) });
  } finally {
    await producer.disconnect();
  }
}

export function envelope(pipeline: string, key: string | number, payload: unknown = { n: key }): string {
  return JSON.stringify({
    v: 1,
    pipeline,
    key,
    payload,
    attempt: 1,
    runId: 'test-run',
    producedAt: new Date().toISOString(),
  });
}

/** Valid task messages for keys 1..n. */
export function tasks(pipeline: string, n: number): Message[] {
  return Array.from({ length: n }, (_, i) => ({ key: String(i + 1), value: envelope(pipeline, i + 1) }));
}

export async function committedOffsets(
  groupId: string,
  topic: string,
  brokers = BROKERS,
): Promise<Map<number, bigint>> {
  const admin = new Kafka({ clientId: 'sluice-test', brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return new Map((t?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
  } finally {
    await admin.disconnect();
  }
}

export async function highWatermarks(topic: string, brokers = BROKERS): Promise<Map<number, bigint>> {
  const admin = new Kafka({ clientId: 'sluice-test', brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    return new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, BigInt(p.high)]));
  } finally {
    await admin.disconnect();
  }
}

export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
