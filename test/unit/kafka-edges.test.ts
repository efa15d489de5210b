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
import { UnacknowledgedError, partitionOf, sendAcknowledged } from '../../src/producer/acked-send.js';
import { messageSize, type OutgoingMessage } from '../../src/producer/batch-sender.js';

const PARTITIONS = 6;

function message(key: string): OutgoingMessage {
  return {
    key,
    value: Buffer.from(`{"key":"${key}"}`),
    size: messageSize(key, '{}'),
    keyText: key,
    quarantined: false,
    partition: partitionOf(key, PARTITIONS),
  };
}

/**
 * A producer whose log is kept per partition; `drop` lists partitions a send leaves out of its answer and its log.
 */
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
    const meta = Array.from({ length: PARTITIONS }, (_, partitionId) => ({
      partitionId,
      leader: partitionId % 3,
      partitionErrorCode: 0,
      replicas: [],
      isr: [],
    }));
    for (const key of ['1', '42', 'abc', 'ünï', '18446744073709551615'])
      assert.equal(
        partitionOf(key, PARTITIONS),
        kafkajs({ topic: 't', partitionMetadata: meta, message: { key, value: null } }),
      );
  });

  it("hashes like kafkajs's murmur2 for keys of every length, any characters, and any partition count", () => {
    const kafkajs = Partitioners.DefaultPartitioner();
    const alphabet = ['a', 'Z', '7', '-', 'ü', '東', '🎉', '\u0000', '\u00ff', ' '];
    let seed = 7;
    const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let i = 0; i < 3000; i++) {
      const length = i < 40 ? i + 1 : 1 + rand(i % 10 === 0 ? 2000 : 40);
      const key = Array.from({ length }, () => alphabet[rand(alphabet.length)]).join('');
      const partitions = 1 + rand(64);
      const meta = Array.from({ length: partitions }, (_, partitionId) => ({
        partitionId,
        leader: 0,
        partitionErrorCode: 0,
        replicas: [],
        isr: [],
      }));
      assert.equal(
        partitionOf(key, partitions),
        kafkajs({ topic: 't', partitionMetadata: meta, message: { key, value: null } }),
        `key ${JSON.stringify(key.slice(0, 20))} of ${length}, ${partitions} partitions`,
      );
    }
  });

  it('sends again the partitions a resolved send did not acknowledge, and returns every offset', async () => {
    const batch = Array.from({ length: 60 }, (_, i) => message(String(i + 1)));
    const missing = [...new Set(batch.map((m) => m.partition!))].slice(0, 2);
    const f = fakeProducer([missing]);
    const acked = await sendAcknowledged(f.producer, batch, {
      topic: 't',
      compression: CompressionTypes.None,
      resends: 3,
      log: silentLogger(),
    });
    assert.equal(f.sends(), 2);
    assert.equal(acked.length, batch.length);
    // Every acknowledged (partition, offset) holds exactly that key in the log, and every key is in the log once.
    for (const a of acked) assert.equal(f.log.get(a.partition)?.[Number(a.offset)], a.keyText);
    const written = [...f.log.values()].flat().sort();
    assert.deepEqual(written, batch.map((m) => m.keyText).sort());
  });

  it(
    'fails the batch when a partition is never acknowledged, handing over ' + 'what was acknowledged to be recorded',
    async () => {
      const batch = Array.from({ length: 20 }, (_, i) => message(String(i + 1)));
      const p = batch[0]!.partition!;
      const f = fakeProducer([[p], [p], [p]]);
      await assert.rejects(
        sendAcknowledged(f.producer, batch, {
          topic: 't',
          compression: CompressionTypes.None,
          resends: 2,
          log: silentLogger(),
        }),
        (err: unknown) => {
          assert.ok(err instanceof UnacknowledgedError);
          const cause = err.error as Error & { code?: string };
          assert.equal(cause.code, 'KAFKA_PUBLISH_UNACKNOWLEDGED');
          assert.match(cause.message, new RegExp(`partition\\(s\\) ${p} `));
          // The other partitions are in the topic: they are handed over, exactly those, at their offsets.
          assert.deepEqual(
            err.acknowledged.map((a) => a.keyText).sort(),
            batch
              .filter((m) => m.partition !== p)
              .map((m) => m.keyText)
              .sort(),
          );
          for (const a of err.acknowledged) assert.equal(f.log.get(a.partition)?.[Number(a.offset)], a.keyText);
          return true;
        },
      );
      assert.equal(f.sends(), 3);
    },
  );

  it('hands over what earlier sends got acknowledged when a resend throws', async () => {
    const batch = Array.from({ length: 30 }, (_, i) => message(String(i + 1)));
    const p = batch[0]!.partition!;
    const f = fakeProducer([[p]]);
    let calls = 0;
    const throwing = {
      send: async (r: { messages: OutgoingMessage[] }) => {
        if (calls++ === 1)
          throw Object.assign(new Error('Connection error: connect ECONNREFUSED'), { name: 'KafkaJSConnectionError' });
        return f.producer.send(r as never);
      },
    } as unknown as Producer;
    await assert.rejects(
      sendAcknowledged(throwing, batch, {
        topic: 't',
        compression: CompressionTypes.None,
        resends: 2,
        log: silentLogger(),
      }),
      (err: unknown) => {
        assert.ok(err instanceof UnacknowledgedError);
        assert.equal((err.error as Error).name, 'KafkaJSConnectionError');
        assert.equal(err.acknowledged.length, batch.filter((m) => m.partition !== p).length);
        return true;
      },
    );
  });
});

describe('replication warnings (doctor, status)', () => {
  const topic = {
    partitions: 6,
    replicationFactor: 3,
    underReplicated: 0,
    minInsyncReplicas: 2,
    downBrokers: [] as number[],
  };
  it('says nothing of 3 replicas with min ISR 2, nor of a single-broker development cluster', () => {
    assert.deepEqual(replicationWarnings(3, topic), []);
    assert.deepEqual(replicationWarnings(1, { ...topic, replicationFactor: 1, minInsyncReplicas: 1 }), []);
  });
  it(
    'warns of fewer than 3 replicas on 3 or more brokers, of min ISR 1 with ' +
      'acks=all, and of partitions out of sync',
    () => {
      assert.match(
        replicationWarnings(3, { ...topic, replicationFactor: 1, minInsyncReplicas: 1 }).join('\n'),
        /^1 replica\(s\) per partition on a cluster of 3 brokers/,
      );
      assert.match(
        replicationWarnings(3, { ...topic, minInsyncReplicas: 1 }).join('\n'),
        /^min\.insync\.replicas 1 with acks=all/,
      );
      assert.match(
        replicationWarnings(3, { ...topic, underReplicated: 2 }).join('\n'),
        /^2 of 6 partition\(s\) have fewer in-sync replicas/,
      );
      assert.match(
        replicationWarnings(3, { ...topic, minInsyncReplicas: 4 }).join('\n'),
        /^min\.insync\.replicas 4 is above the topic's 3 replica\(s\): every write with acks=all fails/,
      );
    },
  );
  it('counts the brokers that are down as part of the cluster, and names them', () => {
    const w = replicationWarnings(2, { ...topic, replicationFactor: 1, minInsyncReplicas: 1, downBrokers: [3] });
    assert.match(w[0] ?? '', /^broker\(s\) 3 hold replicas of the topic and are down/);
    assert.ok(
      w.some((l) => l.startsWith('1 replica(s) per partition on a cluster of 3 brokers')),
      w.join('\n'),
    );
  });
});

describe('a kafkajs error outside a send', () => {
  it(
    'is an outage (retriable, exit 3), unless credentials (not retried) or ' +
      'the request (exit 2) were refused; anything else passes unchanged',
    () => {
      const refused = Object.assign(new Error('Connection error: connect ECONNREFUSED 127.0.0.1:1'), {
        name: 'KafkaJSConnectionError',
      });
      const outage = kafkaFailure(refused, 'could not prepare topic t', 'check the brokers');
      assert.ok(outage instanceof KafkaError);
      assert.deepEqual(
        [outage.code, outage.retriable, outage.message],
        ['KAFKA_UNREACHABLE', true, 'could not prepare topic t: Connection error: connect ECONNREFUSED 127.0.0.1:1'],
      );
      const auth = kafkaFailure(
        Object.assign(new Error('SASL PLAIN authentication failed'), { name: 'KafkaJSSASLAuthenticationError' }),
        'x',
        'y',
      );
      assert.deepEqual([(auth as KafkaError).code, (auth as KafkaError).retriable], ['KAFKA_AUTH', false]);
      const policy = Object.assign(new Error('Replication factor: 3 larger than available brokers: 1.'), {
        name: 'KafkaJSProtocolError',
        retriable: false,
        type: 'INVALID_REPLICATION_FACTOR',
      });
      const rejected = kafkaFailure(policy, 'could not prepare topic t', 'y') as KafkaError;
      assert.deepEqual([rejected.code, rejected.retriable, rejected.exitCode], ['KAFKA_REFUSED', false, 2]);
      assert.match(rejected.message, /\(INVALID_REPLICATION_FACTOR\)$/);
      const bug = new TypeError('x is undefined');
      assert.equal(kafkaFailure(bug, 'x', 'y'), bug);
    },
  );
});
