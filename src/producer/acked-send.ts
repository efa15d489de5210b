// Sends one batch and proves that every message of it is in the topic's log, with its partition and offset.
//
// Why not trust a resolved `producer.send`: kafkajs 2.2.4 (src/producer/sendMessages.js) keeps the answer of
// each broker that acknowledged its share of a send, and on a retry sends only to brokers without one. When
// a partition's leader dies and leadership moves to a broker that has already answered, that partition's
// messages are never sent again, and the send resolves with an answer that simply lacks the partition. That
// is how a leader kill during `produce` left ~1,030 of 150,000 recorded tasks out of the topic.
//
// So each message's partition is chosen here (kafkajs's own default partitioner, murmur2 of the key: the same
// partition kafkajs would have picked), the answer is read per partition, and the partitions the answer does
// not acknowledge are sent again in a fresh send (whose bookkeeping starts empty, so it goes to the new
// leader). The idempotent producer rolled their sequence numbers back when their request failed, so a resend
// of a batch the old leader did write is deduplicated by the broker, not written twice.

import type { Producer, CompressionTypes, RecordMetadata } from 'kafkajs';
import { KafkaError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Acknowledged } from '../ledger/dispatches.js';
import type { OutgoingMessage } from './batch-sender.js';

export type { Acknowledged };

const M = 0x5bd1e995;
/** Room for any key sluice publishes (MAX_KEY_BYTES of UTF-8) without an allocation per message. */
const scratch = Buffer.allocUnsafe(4096);

/**
 * Kafka's murmur2 (the Java client's Utils.murmur2, which kafkajs's default partitioner ports with 64-bit Long
 * objects) in 32-bit integer arithmetic: the same hash, without allocating a Long per step.
 */
export function murmur2(data: Uint8Array, length = data.length): number {
  let h = (0x9747b28c ^ length) | 0;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  switch (length & 3) {
    case 3:
      h ^= data[whole + 2]! << 16;
    // falls through
    case 2:
      h ^= data[whole + 1]! << 8;
    // falls through
    case 1:
      h ^= data[whole]!;
      h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h;
}

/** The partition kafkajs's default partitioner gives a key on a topic of `partitions` partitions. */
export function partitionOf(key: string, partitions: number): number {
  // UTF-8 takes at most 3 bytes per UTF-16 unit: a key that short always fits the scratch buffer whole.
  const hash =
    key.length * 3 <= scratch.length
      ? murmur2(scratch, scratch.write(key, 0, 'utf8'))
      : murmur2(Buffer.from(key, 'utf8'));
  return (hash & 0x7fffffff) % partitions;
}

/** A batch that failed part way: `error` is why, `acknowledged` the messages Kafka did write (record them). */
export class UnacknowledgedError extends Error {
  constructor(
    readonly error: unknown,
    readonly acknowledged: Acknowledged[],
  ) {
    super(error instanceof Error ? error.message : String(error), { cause: error });
    this.name = 'UnacknowledgedError';
  }
}

export interface AckedSendOptions {
  topic: string;
  compression: CompressionTypes;
  /** Sends of the partitions still unacknowledged, after the first; each is a whole kafkajs send with its retries. */
  resends: number;
  log: Logger;
}

/**
 * Sends `messages` (each with its `partition` set) with acks=all until every partition is acknowledged;
 * returns each message's offset, in the batch's order. Throws KAFKA_PUBLISH_UNACKNOWLEDGED when partitions
 * are still missing after `resends` more sends (nothing of them is recorded, so the next run publishes them).
 */
export async function sendAcknowledged(
  producer: Producer,
  messages: readonly OutgoingMessage[],
  opts: AckedSendOptions,
): Promise<Acknowledged[]> {
  const byPartition = new Map<number, OutgoingMessage[]>();
  for (const m of messages) {
    const p = m.partition!;
    const group = byPartition.get(p);
    if (group === undefined) byPartition.set(p, [m]);
    else group.push(m);
  }
  const offsets = new Map<OutgoingMessage, string>();
  const acknowledged = (): Acknowledged[] =>
    messages
      .filter((m) => offsets.has(m))
      .map((m) => ({ keyText: m.keyText, partition: m.partition!, offset: offsets.get(m)! }));
  let pending = messages;
  for (let send = 0; send <= opts.resends; send++) {
    let answers: RecordMetadata[];
    try {
      answers = await producer.send({
        topic: opts.topic,
        acks: -1,
        compression: opts.compression,
        messages: pending as OutgoingMessage[],
      });
    } catch (err) {
      // What earlier sends got acknowledged is in the topic: it travels with the failure, to be recorded.
      throw new UnacknowledgedError(err, acknowledged());
    }
    for (const a of answers) {
      const group = a.topicName === opts.topic && a.errorCode === 0 ? byPartition.get(a.partition) : undefined;
      const base = a.baseOffset ?? a.offset;
      if (group === undefined || base === undefined || offsets.has(group[0]!)) continue;
      // Offsets past 2^53 (never seen in practice) are counted exactly as BigInt; the others as numbers.
      const first = Number(base);
      if (Number.isSafeInteger(first + group.length)) group.forEach((m, i) => offsets.set(m, String(first + i)));
      else group.forEach((m, i) => offsets.set(m, String(BigInt(base) + BigInt(i))));
    }
    if (offsets.size === messages.length) break;
    pending = messages.filter((m) => !offsets.has(m));
    const partitions = [...new Set(pending.map((m) => m.partition!))].sort((a, b) => a - b);
    if (send < opts.resends)
      opts.log.warn(
        { topic: opts.topic, partitions, messages: pending.length, resend: send + 1 },
        'send resolved without acknowledging every partition; sending those again',
      );
  }
  if (offsets.size !== messages.length) {
    const missing = [...new Set(messages.filter((m) => !offsets.has(m)).map((m) => m.partition!))];
    const err = new KafkaError(
      'KAFKA_PUBLISH_UNACKNOWLEDGED',
      `Kafka did not acknowledge partition(s) ${missing.join(', ')} of ${opts.topic} after ${opts.resends + 1} send(s)`,
      {
        retriable: true,
        hint: 'check the brokers (sluice doctor), then rerun produce: what was not acknowledged was not recorded',
      },
    );
    throw new UnacknowledgedError(err, acknowledged());
  }
  return messages.map((m) => ({ keyText: m.keyText, partition: m.partition!, offset: offsets.get(m)! }));
}
