// A broker-less kafkajs for unit tests that drive produce() or the fetcher unchanged
// (test/unit/statements-per-task.test.ts): the kafkajs client's admin(), producer() and consumer() hand out
// fakes. The admin answers as a healthy one-broker cluster that creates any topic asked for (one partition,
// the default max.message.bytes); the producer acknowledges every send and keeps it; the consumer keeps the
// eachBatch handler it is run with, so the test hands it batches itself. restore() puts kafkajs back.

import { Kafka, type EachBatchPayload } from 'kafkajs';

export interface FakeKafka {
  /** Every send the producer was asked for, in order. */
  sent: Array<{ topic: string; messages: unknown[] }>;
  /** Called when a producer connects (produce() connects it just before reading the first page). */
  onProducerConnect: () => void;
  /** The handler the fetcher's consumer was run with. */
  eachBatch: ((p: EachBatchPayload) => Promise<void>) | null;
  restore(): void;
}

const METHODS = ['admin', 'producer', 'consumer'] as const;

export function installFakeKafka(): FakeKafka {
  const client = Kafka.prototype as unknown as Record<(typeof METHODS)[number], unknown>;
  const original = Object.fromEntries(METHODS.map((m) => [m, client[m]])) as Record<(typeof METHODS)[number], unknown>;
  const fake: FakeKafka = {
    sent: [],
    onProducerConnect: () => {},
    eachBatch: null,
    restore: () => {
      for (const m of METHODS) client[m] = original[m];
    },
  };
  const offsets = new Map<number, number>();
  const groups = new Set<string>();
  client.admin = () => ({
    connect: async () => {},
    disconnect: async () => {},
    describeCluster: async () => ({
      brokers: [{ nodeId: 1, host: 'fake', port: 9092 }],
      controller: 1,
      clusterId: 'fake-cluster',
    }),
    listTopics: async () => [],
    createTopics: async () => true,
    fetchTopicMetadata: async ({ topics }: { topics: string[] }) => ({
      topics: topics.map((name) => ({ name, partitions: [{ partitionId: 0 }] })),
    }),
    listGroups: async () => ({ groups: [...groups].map((groupId) => ({ groupId, protocolType: 'consumer' })) }),
    setOffsets: async ({ groupId }: { groupId: string }) => void groups.add(groupId),
    deleteGroups: async (ids: string[]) => void ids.forEach((id) => groups.delete(id)),
    describeConfigs: async () => ({
      resources: [{ configEntries: [{ configName: 'max.message.bytes', configValue: '1048588' }] }],
    }),
  });
  client.producer = () => ({
    connect: async () => fake.onProducerConnect(),
    disconnect: async () => {},
    send: async (r: { topic: string; messages: Array<{ partition?: number }> }) => {
      fake.sent.push({ topic: r.topic, messages: r.messages });
      // Acknowledged like a broker: one answer per partition the send wrote.
      const counts = new Map<number, number>();
      for (const m of r.messages) counts.set(m.partition ?? 0, (counts.get(m.partition ?? 0) ?? 0) + 1);
      return [...counts.keys()].map((partition) => {
        const base = offsets.get(partition) ?? 0;
        offsets.set(partition, base + counts.get(partition)!);
        return { topicName: r.topic, partition, errorCode: 0, baseOffset: String(base) };
      });
    },
  });
  client.consumer = ({ groupId }: { groupId: string }) => {
    // A claim (kafka/ledger-claims.ts) joins its group and commits: the join is answered at once.
    const claim = groupId.startsWith('sluice-claim.');
    const joins: Array<() => void> = [];
    return {
      events: { GROUP_JOIN: 'consumer.group_join', CRASH: 'consumer.crash' },
      on: (event: string, fn: () => void) => {
        if (claim && event === 'consumer.group_join') joins.push(fn);
        return () => {};
      },
      connect: async () => {},
      subscribe: async () => {},
      run: async (c: { eachBatch: (p: EachBatchPayload) => Promise<void> }) => {
        if (claim) setImmediate(() => joins.forEach((fn) => fn()));
        else fake.eachBatch = c.eachBatch;
      },
      commitOffsets: async () => void groups.add(groupId),
      pause: () => {},
      resume: () => {},
      disconnect: async () => {},
    };
  };
  return fake;
}
