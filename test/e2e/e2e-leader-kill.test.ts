// A partition leader lost, end to end, on a 3-broker KRaft cluster (RF 3, min ISR 2 as broker defaults, as
// production runs it): kill -9 of the leader once during `produce`, and once during fetch/work.
// During produce: every task sluice records as dispatched is in the topic, at the partition and offset it
// recorded (high watermarks and the messages read back), nothing acknowledged is published twice; a fetcher
// restarted and a produce rerun while the broker is still down both start and finish. During work: the
// fetcher and workers ride it out (never exit), every row ends with exactly one result and `status --check`
// passes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Kafka, logLevel, type PartitionMetadata } from 'kafkajs';
import type { RowDataPacket } from 'mysql2/promise';
import { testDatabase } from '../helpers/db.js';
import { startE2E, type E2E, type Proc } from '../helpers/e2e.js';
import { startPrivateCluster, type PrivateCluster } from '../helpers/kafka.js';
import { waitFor } from '../helpers/spool.js';

const ROWS = 40_000;
let cluster: PrivateCluster | undefined;
let e: E2E | undefined;
let drop: (() => Promise<void>) | undefined;

before(async () => {
  cluster = await startPrivateCluster(3, { defaultRf: 3, minIsr: 2 });
});
after(async () => {
  await e?.close();
  await drop?.();
  await cluster?.stop();
});

const client = (brokers: string[]) =>
  new Kafka({
    clientId: 'leader-kill-test',
    brokers,
    logLevel: logLevel.NOTHING,
    retry: { retries: 5, initialRetryTime: 200 },
  });

async function partitions(brokers: string[], topic: string): Promise<PartitionMetadata[]> {
  const admin = client(brokers).admin();
  await admin.connect();
  try {
    const [meta] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics;
    return [...(meta?.partitions ?? [])].sort((a, b) => a.partitionId - b.partitionId);
  } finally {
    await admin.disconnect();
  }
}

interface Message {
  partition: number;
  offset: string;
  key: string;
  producedAt: string;
}

/** Every message of the topic, read from the beginning up to the high watermarks. */
async function readTopic(brokers: string[], topic: string): Promise<{ messages: Message[]; high: number }> {
  const kafka = client(brokers);
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const high = offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  const messages: Message[] = [];
  const consumer = kafka.consumer({ groupId: `reader-${process.pid}-${Date.now()}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        const v = JSON.parse(String(m.value)) as { producedAt: string };
        messages.push({ partition: batch.partition, offset: m.offset, key: String(m.key), producedAt: v.producedAt });
      }
    },
  });
  await waitFor(`${high} messages read back`, () => messages.length >= high, 120_000);
  await consumer.disconnect();
  return { messages, high };
}

async function leaderOf(brokers: string[], topic: string, partition = 0): Promise<number> {
  const p = (await partitions(brokers, topic)).find((x) => x.partitionId === partition);
  assert.ok(p !== undefined && p.leader > 0, `partition ${partition} has a leader`);
  return p.leader;
}

const survivorsOf = (c: PrivateCluster, dead: number): string[] => c.brokers.filter((_, i) => i + 1 !== dead);

/** Fails the test if a long-running process exits before the test stops it. */
function mustRun(procs: Proc[]): { check(): void } {
  const exits: string[] = [];
  for (const p of procs) void p.exited.then((code) => exits.push(`${p.label} exited ${code}: ${p.log().slice(-2000)}`));
  return { check: () => assert.deepEqual(exits, [], 'fetchers and workers never exit') };
}

describe('a partition leader killed', () => {
  it(
    'during produce and during work: the topic holds every recorded task, every row ends with exactly one result',
    { timeout: 600_000 },
    async (t) => {
      const c = cluster!;
      const url = await testDatabase({ after: (fn: () => Promise<void>) => (drop = fn) });
      e = await startE2E({
        url,
        rows: ROWS,
        partitions: 6,
        brokers: c.brokers,
        // A small spool keeps the fetcher fetching while the workers drain it (paused and resumed by backpressure).
        config: {
          producer: { progressIntervalMs: 200, batchBytes: 32 * 1024 },
          spool: { leaseMs: 3000, highWaterItems: 3000, lowWaterItems: 1500 },
        },
        stages:
          `[{ name: 'recognise', concurrency: 16, run: async (p, ctx) => { await ` +
          `new Promise((r) => setTimeout(r, 10)); return { n: ctx.task.key }; } }]`,
      });
      const h = e;
      const spool = `${h.dir}/machine-1`;
      const fetch1 = h.start('fetch', ['--spool-dir', spool]);
      await waitFor('the first fetcher runs', () => fetch1.log().includes('"msg":"fetcher started"'), 60_000);

      // --- 1. The leader of partition 0 is killed while produce is sending.
      const produce = h.start('produce');
      const sent = (): number =>
        Math.max(
          0,
          ...produce
            .log()
            .split('\n')
            .filter((l) => l.includes('"produce progress"'))
            .map((l) => Number(/"published":(\d+)/.exec(l)?.[1] ?? 0)),
        );
      await waitFor(
        'produce is a quarter through',
        () => sent() >= ROWS / 4 || produce.child.exitCode !== null,
        60_000,
      );
      assert.equal(
        produce.child.exitCode,
        null,
        `produce still runs when the leader is killed: ${produce.log().slice(-1500)}`,
      );
      const victim = await leaderOf(c.brokers, h.topic);
      c.kill(victim);
      t.diagnostic(`killed node ${victim}, leader of partition 0, while produce ran: ${sent()} of ${ROWS} sent`);
      const firstCode = await produce.exited;
      const resends = produce
        .log()
        .split('\n')
        .filter((l) => l.includes('sending those again')).length;
      t.diagnostic(
        `produce during the leader kill exited ${firstCode}; ${resends} ` +
          `resend(s) of partitions a resolved send had not acknowledged`,
      );
      assert.ok(
        firstCode === 0 || firstCode === 3,
        `produce exits 0, or 3 on a send it could not get acknowledged: ${produce.log().slice(-3000)}`,
      );

      // --- 2. With the broker still down: the fetcher restarts, and a rerun of produce starts and finishes.
      fetch1.child.kill('SIGTERM');
      assert.equal(await fetch1.exited, 0, fetch1.log().slice(-2000));
      const restartedAt = Date.now();
      const fetch2 = h.start('fetch', ['--spool-dir', spool]);
      await waitFor(
        'the fetcher restarted while a broker is down',
        () => fetch2.log().includes('"msg":"fetcher started"'),
        120_000,
      ).catch((err: Error) => {
        throw new Error(
          `${err.message}: ${fetch2
            .log()
            .split('\n')
            .filter((l) => !l.includes('"level":20'))
            .slice(-30)
            .join('\n')}`,
        );
      });
      t.diagnostic(`fetcher restarted with node ${victim} down: started in ${Date.now() - restartedAt} ms`);
      const rerun = await h.cli('produce', ['--json']);
      assert.equal(rerun.code, 0, rerun.stderr.slice(-3000));
      const summary = JSON.parse(rerun.stdout) as { published: number };
      t.diagnostic(`rerun of produce with node ${victim} down: exit 0, published ${summary.published}`);
      assert.ok(cluster!.pidOf(victim) === null, 'the broker was down for the whole rerun');

      // Every recorded dispatch is a message of the topic, at the partition and offset recorded, with its key.
      const survivors = survivorsOf(c, victim);
      const [rows] = await h.db.query<RowDataPacket[]>(
        'SELECT CONVERT(task_key USING utf8mb4) AS k, kafka_partition AS p, ' +
          'kafka_offset AS o FROM sluice_dispatches WHERE pipeline = ?',
        [h.name],
      );
      const { messages, high } = await readTopic(survivors, h.topic);
      const at = new Map(messages.map((m) => [`${m.partition}:${m.offset}`, m]));
      const keys = new Set(messages.map((m) => m.key));
      t.diagnostic(
        `recorded ${rows.length} dispatches; the topic holds ${high} messages ` +
          `(high watermarks), ${messages.length} read back, ${keys.size} ` +
          `distinct keys`,
      );
      assert.equal(rows.length, ROWS, 'every task recorded as dispatched once the rerun is done');
      const notThere = rows.filter((r) => at.get(`${r.p}:${r.o}`)?.key !== String(r.k));
      assert.deepEqual(
        notThere.slice(0, 5),
        [],
        `${notThere.length} recorded dispatch(es) not in the topic where recorded`,
      );
      assert.equal(keys.size, ROWS, 'the topic holds every task');
      assert.ok(high >= rows.length);
      // Nothing acknowledged was published again: a second copy of a key only ever precedes the recorded one.
      const recorded = new Map(rows.map((r) => [String(r.k), at.get(`${r.p}:${r.o}`)!]));
      const republished = messages.filter(
        (m) => m !== recorded.get(m.key) && m.producedAt > recorded.get(m.key)!.producedAt,
      );
      assert.equal(republished.length, 0, 'no copy published after its key was acknowledged');
      t.diagnostic(`${high - ROWS} duplicate message(s) in the topic, each sent before its key's acknowledged copy`);

      // --- 3. The broker comes back; then the leader of partition 0 is killed while the work goes on.
      await c.restart(victim);
      await waitFor(
        `node ${victim} back in sync`,
        async () => (await partitions(c.brokers, h.topic)).every((p) => p.isr.length === 3),
        60_000,
      );
      const worker = h.start('work', ['--spool-dir', spool]);
      const running = mustRun([fetch2, worker]);
      await waitFor('work under way', async () => (await h.counts()).results >= ROWS / 5, 240_000);
      const second = await leaderOf(c.brokers, h.topic);
      const before = (await h.counts()).results;
      c.kill(second);
      t.diagnostic(`killed node ${second}, leader of partition 0, at ${before} of ${ROWS} results`);
      await waitFor('every task done', async () => (await h.counts()).results === ROWS, 300_000);
      running.check();

      const counts = await h.counts();
      assert.equal(counts.distinctResults, ROWS);
      assert.equal(counts.quarantined, 0);
      assert.deepEqual(await h.mismatches(), { missing: 0, extra: 0 });
      const check = await h.cli('status', ['--check']);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      running.check();
      const codes = await h.stopAll();
      assert.deepEqual(codes, [0, 0], 'fetcher and worker stop cleanly on SIGTERM');
    },
  );
});
