// Where sluice meets a production Kafka cluster, the parts without a broker: acknowledged sends, the
// replication warnings doctor and status give, and how a kafkajs failure is reported.
//
// The producer records a task as dispatched only for a message Kafka acknowledged, with its partition and
// offset. kafkajs 2.2.4 can resolve a send without writing some partitions (a leader moved to a broker that had
// already answered): the fake producer here answers like that, and the messages must still all be written.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CompressionTypes, Partitioners, type Producer, type RecordMetadata } from 'kafkajs';
import { KafkaError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { kafkaFailure } from '../../src/kafka/client.js';
import { replicationWarnings } from '../../src/kafka/health.js';
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

describe('replication warnings (doctor, status)', () => {
  const topic = { partitions: 6, replicationFactor: 3, underReplicated: 0, minInsyncReplicas: 2 };
  it('says nothing of 3 replicas with min ISR 2, nor of a single-broker development cluster', () => {
    assert.deepEqual(replicationWarnings(3, topic), []);
    assert.deepEqual(replicationWarnings(1, { ...topic, replicationFactor: 1, minInsyncReplicas: 1 }), []);
  });
  it('warns of fewer than 3 replicas on 3 or more brokers, of min ISR 1 with acks=all, and of partitions out of sync', () => {
    assert.match(replicationWarnings(3, { ...topic, replicationFactor: 1, minInsyncReplicas: 1 }).join('\n'), /^1 replica\(s\) per partition on a cluster of 3 brokers/);
    assert.match(replicationWarnings(3, { ...topic, minInsyncReplicas: 1 }).join('\n'), /^min\.insync\.replicas 1 with acks=all/);
    assert.match(replicationWarnings(3, { ...topic, underReplicated: 2 }).join('\n'), /^2 of 6 partition\(s\) have fewer in-sync replicas/);
  });
});

describe('a kafkajs error outside a send', () => {
  it('is an outage (retriable, exit 3) unless the credentials were refused; anything else passes unchanged', () => {
    const refused = Object.assign(new Error('Connection error: connect ECONNREFUSED 127.0.0.1:1'), { name: 'KafkaJSConnectionError' });
    const outage = kafkaFailure(refused, 'could not prepare topic t', 'check the brokers');
    assert.ok(outage instanceof KafkaError);
    assert.deepEqual([outage.code, outage.retriable, outage.message], ['KAFKA_UNREACHABLE', true, 'could not prepare topic t: Connection error: connect ECONNREFUSED 127.0.0.1:1']);
    const auth = kafkaFailure(Object.assign(new Error('SASL PLAIN authentication failed'), { name: 'KafkaJSSASLAuthenticationError' }), 'x', 'y');
    assert.deepEqual([(auth as KafkaError).code, (auth as KafkaError).retriable], ['KAFKA_AUTH', false]);
    const bug = new TypeError('x is undefined');
    assert.equal(kafkaFailure(bug, 'x', 'y'), bug);
  });
});
