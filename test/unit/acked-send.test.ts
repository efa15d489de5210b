// The producer records a task as dispatched only for a message Kafka acknowledged, with its partition and
// offset. kafkajs 2.2.4 can resolve a send without writing some partitions (a leader moved to a broker that had
// already answered): the fake producer here answers like that, and the messages must still all be written.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CompressionTypes, Partitioners, type Producer, type RecordMetadata } from 'kafkajs';
import { silentLogger } from '../../src/core/logger.js';
import { partitionOf, sendAcknowledged } from '../../src/producer/acked-send.js';
import { messageSize, type OutgoingMessage } from '../../src/producer/batch-sender.js';

const PARTITIONS = 6;

function message(key: string): OutgoingMessage {
  return { key, value: `{"key":"${key}"}`, size: messageSize(key, '{}'), keyText: key, dead: false, partition: partitionOf(key, PARTITIONS) };
}

/** A producer whose log is kept per partition; `drop` lists partitions a send leaves out of its answer and its log. */
function fakeProducer(dropPerSend: number[][]) {
  const log = new Map<number, string[]>();
  let sends = 0;
  const producer = {
    send: async ({ messages }: { messages: OutgoingMessage[] }): Promise<RecordMetadata[]> => {
      const drop = new Set(dropPerSend[sends++] ?? []);
      const answers: RecordMetadata[] = [];
      const byPartition = new Map<number, OutgoingMessage[]>();
      for (const m of messages) byPartition.set(m.partition!, [...(byPartition.get(m.partition!) ?? []), m]);
      for (const [p, ms] of byPartition) {
        if (drop.has(p)) continue;
        const l = log.get(p) ?? [];
        answers.push({ topicName: 't', partition: p, errorCode: 0, baseOffset: String(l.length) });
        l.push(...ms.map((m) => m.keyText));
        log.set(p, l);
      }
      return answers;
    },
  } as unknown as Producer;
  return { producer, log, sends: () => sends };
}

describe('sendAcknowledged', () => {
  it("gives each key the partition kafkajs's default partitioner gives it", () => {
    const kafkajs = Partitioners.DefaultPartitioner();
    const meta = Array.from({ length: PARTITIONS }, (_, partitionId) => ({ partitionId, leader: partitionId % 3, partitionErrorCode: 0, replicas: [], isr: [] }));
    for (const key of ['1', '42', 'abc', 'ünï', '18446744073709551615']) assert.equal(partitionOf(key, PARTITIONS), kafkajs({ topic: 't', partitionMetadata: meta, message: { key, value: null } }));
  });

  it('sends again the partitions a resolved send did not acknowledge, and returns every offset', async () => {
    const batch = Array.from({ length: 60 }, (_, i) => message(String(i + 1)));
    const missing = [...new Set(batch.map((m) => m.partition!))].slice(0, 2);
    const f = fakeProducer([missing]);
    const acked = await sendAcknowledged(f.producer, batch, { topic: 't', compression: CompressionTypes.None, resends: 3, log: silentLogger() });
    assert.equal(f.sends(), 2);
    assert.equal(acked.length, batch.length);
    // Every acknowledged (partition, offset) holds exactly that key in the log, and every key is in the log once.
    for (const a of acked) assert.equal(f.log.get(a.partition)?.[Number(a.offset)], a.keyText);
    const written = [...f.log.values()].flat().sort();
    assert.deepEqual(written, batch.map((m) => m.keyText).sort());
  });

  it('fails the batch when a partition is never acknowledged, so that none of it is recorded', async () => {
    const batch = Array.from({ length: 20 }, (_, i) => message(String(i + 1)));
    const p = batch[0]!.partition!;
    const f = fakeProducer([[p], [p], [p]]);
    await assert.rejects(
      sendAcknowledged(f.producer, batch, { topic: 't', compression: CompressionTypes.None, resends: 2, log: silentLogger() }),
      (err: Error & { code?: string }) => err.code === 'KAFKA_PUBLISH_UNACKNOWLEDGED' && err.message.includes(`partition(s) ${p}`),
    );
    assert.equal(f.sends(), 3);
  });
});
