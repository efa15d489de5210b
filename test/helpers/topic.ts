// Reading a topic back with a plain kafkajs consumer, and counting what it holds.
import { Kafka, logLevel } from 'kafkajs';
import { BROKERS } from './kafka.js';
import { randomName } from './db.js';

export interface ReadMessage {
  key: string;
  value: string;
  partition: number;
  offset: string;
}

const kafka = (brokers = BROKERS) => new Kafka({ clientId: 'sluice-test-reader', brokers, logLevel: logLevel.NOTHING });

/** How many messages the topic holds (sum of partition high watermarks; nothing is compacted or transactional). */
export async function countMessages(topic: string, brokers = BROKERS): Promise<number> {
  const admin = kafka(brokers).admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
  } finally {
    await admin.disconnect();
  }
}

/** Every message of the topic, read from the beginning by a fresh consumer group. */
export async function readAll(topic: string, brokers = BROKERS): Promise<ReadMessage[]> {
  const expected = await countMessages(topic, brokers);
  const messages: ReadMessage[] = [];
  if (expected === 0) return messages;
  const consumer = kafka(brokers).consumer({ groupId: randomName('sluice-test-reader') });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`read ${messages.length} of ${expected} messages in 30 s`)),
        30_000,
      );
      consumer
        .run({
          eachMessage: async ({ message, partition }) => {
            messages.push({
              key: message.key?.toString('utf8') ?? '',
              value: message.value?.toString('utf8') ?? '',
              partition,
              offset: message.offset,
            });
            if (messages.length >= expected) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return messages;
}
