// A three-node KRaft cluster on this machine (scripts/services.sh with SLUICE_KAFKA_NODES=3): every node is a
// broker, a topic with three replicas spreads its leaders over them, and when one node is killed with kill -9
// the two others keep serving metadata and, once the controller fences the dead broker (broker.session.timeout.ms,
// 9 s), give its partitions new leaders; the node then comes back with the same ports and data.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kafka, logLevel, type PartitionMetadata } from 'kafkajs';
import { startPrivateCluster } from '../helpers/kafka.js';
import { waitFor } from '../helpers/spool.js';

const client = (brokers: string[]) =>
  new Kafka({
    clientId: 'sluice-cluster-test',
    brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1000,
    requestTimeout: 3000,
    retry: { retries: 2, initialRetryTime: 100 },
  });

test(
  '3-node cluster: kill -9 of one node, the survivors serve metadata and take over its partitions',
  { timeout: 120_000 },
  async (t) => {
    const started = Date.now();
    const cluster = await startPrivateCluster(3);
    t.after(() => cluster.stop());
    t.diagnostic(`cluster of 3 up in ${Date.now() - started} ms: ${cluster.brokers.join(', ')}`);

    const admin = client(cluster.brokers).admin();
    await admin.connect();
    const described = await admin.describeCluster();
    assert.deepEqual(described.brokers.map((b) => b.nodeId).sort(), [1, 2, 3]);
    assert.deepEqual(described.brokers.map((b) => `${b.host}:${b.port}`).sort(), [...cluster.brokers].sort());

    const topic = `sluice-cluster-${process.pid}-${Date.now()}`;
    await admin.createTopics({ topics: [{ topic, numPartitions: 6, replicationFactor: 3 }], waitForLeaders: true });
    const partitionsOf = async (a: typeof admin): Promise<PartitionMetadata[]> => {
      const [meta] = (await a.fetchTopicMetadata({ topics: [topic] })).topics;
      assert.ok(meta);
      return [...meta.partitions].sort((x, y) => x.partitionId - y.partitionId);
    };
    let before: PartitionMetadata[] = [];
    await waitFor(
      'every replica in sync',
      async () => {
        before = await partitionsOf(admin);
        return before.length === 6 && before.every((p) => p.replicas.length === 3 && p.isr.length === 3);
      },
      15_000,
    );
    await admin.disconnect();

    const victim = before[0]!.leader;
    const led = before.filter((p) => p.leader === victim).map((p) => p.partitionId);
    const survivors = cluster.brokers.filter((_, i) => i + 1 !== victim);
    const survivorIds = [1, 2, 3].filter((id) => id !== victim);
    t.diagnostic(`killing node ${victim} (pid ${cluster.pidOf(victim)}), leader of partition(s) ${led.join(', ')}`);
    assert.ok(cluster.pidOf(victim) !== null);
    cluster.kill(victim);
    await waitFor(`node ${victim} gone`, () => cluster.pidOf(victim) === null, 5000);
    const killedAt = Date.now();

    // A client that knows only the survivors still gets metadata (the dead node is still listed until fenced).
    const survivorAdmin = client(survivors).admin();
    await survivorAdmin.connect();
    t.after(() => survivorAdmin.disconnect());
    assert.equal((await partitionsOf(survivorAdmin)).length, 6);

    let afterKill: PartitionMetadata[] = [];
    await waitFor(
      `new leaders for node ${victim}'s partitions`,
      async () => {
        try {
          afterKill = await partitionsOf(survivorAdmin);
        } catch {
          return false;
        }
        return led.every((id) => survivorIds.includes(afterKill.find((p) => p.partitionId === id)?.leader ?? -1));
      },
      20_000,
    );
    t.diagnostic(
      `leaders moved ${Date.now() - killedAt} ms after ` +
        `the kill: ${afterKill.map((p) => `${p.partitionId}->${p.leader}`).join(' ')}`,
    );
    // Every partition is led by a survivor and the dead node has left the in-sync replicas.
    for (const p of afterKill) {
      assert.ok(survivorIds.includes(p.leader), `partition ${p.partitionId} led by ${p.leader}`);
      assert.ok(!p.isr.includes(victim), `partition ${p.partitionId} isr ${p.isr.join(',')}`);
    }
    assert.deepEqual((await survivorAdmin.describeCluster()).brokers.map((b) => b.nodeId).sort(), survivorIds);

    const restartAt = Date.now();
    await cluster.restart(victim);
    assert.ok(cluster.pidOf(victim) !== null);
    await waitFor('3 brokers again', async () => (await survivorAdmin.describeCluster()).brokers.length === 3, 20_000);
    await waitFor(
      `node ${victim} back in sync`,
      async () => (await partitionsOf(survivorAdmin)).every((p) => p.isr.includes(victim)),
      20_000,
    );
    t.diagnostic(`node ${victim} back and in sync ${Date.now() - restartAt} ms after restart`);
  },
);
