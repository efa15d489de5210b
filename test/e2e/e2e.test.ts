// End to end, every component a separate OS process against the real MariaDB and Kafka: the whole job
// done exactly once over two "machines" (two spools), poison tasks quarantined and requeued, and bad
// messages from outside quarantined while the pipeline finishes.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it, type TestContext } from 'node:test';
import type { RowDataPacket } from 'mysql2/promise';
import { randomName, testDatabase } from '../helpers/db.js';
import { startE2E, type E2E, type Proc } from '../helpers/e2e.js';
import { ensureKafka } from '../helpers/kafka.js';
import { publishRaw, waitFor } from '../helpers/spool.js';

before(async () => {
  await ensureKafka();
});

/** A pipeline of the test's own on a fresh database; its processes are stopped and the database dropped after. */
async function harness(t: TestContext, opts: Omit<Parameters<typeof startE2E>[0], 'url'>): Promise<E2E> {
  const made: { e?: E2E } = {};
  // Registered first, so it runs first: the processes stop before their database is dropped.
  t.after(() => made.e?.close());
  made.e = await startE2E({ url: await testDatabase(t), ...opts });
  return made.e;
}

/** The partitions a fetcher process got in its latest group join (from its `joined consumer group` line). */
function assignment(p: Proc): number[] {
  const last = p
    .log()
    .split('\n')
    .filter((l) => l.includes('"joined consumer group"'))
    .at(-1);
  return last === undefined ? [] : (JSON.parse(last) as { partitions: number[] }).partitions;
}

const untilDone = (e: E2E, expected: (c: Awaited<ReturnType<E2E['counts']>>) => boolean, what: string, ms = 120_000) =>
  waitFor(what, async () => expected(await e.counts()), ms);

describe('end to end', () => {
  it(
    'does 20,000 tasks exactly once with two fetchers on two machines in one ' + 'group and two workers each',
    async (t) => {
      const e = await harness(t, {
        rows: 20_000,
        partitions: 4,
        stages:
          `[{ name: 'parse', run: async (p) => ({ words: p.body.split(' ').length ` +
          `}) }, { name: 'score', run: async (w, ctx) => ({ score: w.words * 2, ` +
          `key: ctx.task.key }) }]`,
      });
      const machines = [join(e.dir, 'machine-1'), join(e.dir, 'machine-2')];
      const fetchers = machines.map((m) => e.start('fetch', ['--spool-dir', m]));
      const workers = machines.flatMap((m) => [
        e.start('work', ['--spool-dir', m]),
        e.start('work', ['--spool-dir', m]),
      ]);
      // Publish once the group has settled with both machines in it, so that both get partitions.
      await waitFor('both fetchers to share the 4 partitions', () => {
        const got = fetchers.map(assignment);
        return got.every((a) => a.length > 0) && got.flat().length === 4;
      });
      const produced = await e.cli('produce');
      assert.equal(produced.code, 0, produced.stderr);
      await untilDone(e, (c) => c.results === 20_000, '20,000 results');
      assert.deepEqual(await e.stopAll(), [0, 0, 0, 0, 0, 0], 'every process drains and exits 0 on SIGTERM');

      assert.deepEqual(await e.mismatches(), { missing: 0, extra: 0 }, 'results are exactly the source keys');
      const c = await e.counts();
      assert.equal(c.distinctResults, 20_000);
      assert.equal(c.milestones, 40_000, 'one milestone per stage per task');
      assert.equal(c.quarantined, 0);
      // Both machines took part: the group split the partitions between the two fetchers.
      for (const f of fetchers) assert.match(f.log(), /"spooled":[1-9]/, `${f.label} spooled something`);
      const workedBy = await e.db.query<RowDataPacket[]>(
        'SELECT COUNT(DISTINCT worker_id) AS n FROM sluice_results WHERE pipeline = ?',
        [e.name],
      );
      assert.ok(Number(workedBy[0][0]?.n) >= 2, 'results came from more than one worker process');
      for (const w of workers) assert.match(w.log(), /"worker stopped"/, `${w.label} ran until the stop`);

      const rerun = await e.cli('produce', ['--all']);
      assert.equal(rerun.code, 0);
      assert.match(rerun.stdout + rerun.stderr, /"published":0/, 'a rerun with nothing missing publishes nothing');
    },
  );

  it(
    'quarantines tasks that always throw or hang, with their attempt history; ' +
      'status shows them; --retry-dead requeues them',
    async (t) => {
      // 1% of the keys always throw, 1% never settle (and ignore their signal); the fix arrives with E2E_FIXED.
      const e = await harness(t, {
        rows: 2000,
        partitions: 2,
        stages:
          `[{ name: 'fragile', timeoutMs: 300, retry: { maxAttempts: 3, ` +
          `initialDelayMs: 10, maxDelayMs: 20 }, run: async (p, ctx) => {
        if (process.env.E2E_FIXED !== '1') {
          if (ctx.task.key % 100 === 7) throw new Error('poison: this ` +
          `document always fails');
          if (ctx.task.key % 100 === 9) return new Promise(() => {});
        }
        return { ok: true };
      } }]`,
      });
      assert.equal((await e.cli('produce')).code, 0);
      e.start('fetch');
      e.start('work');
      e.start('work');
      await untilDone(e, (c) => c.results + c.quarantined === 2000, 'every task done or quarantined');
      await e.stopAll();
      const c = await e.counts();
      assert.equal(c.results, 1960);
      assert.equal(c.quarantined, 40);
      const [hist] = await e.db.query<RowDataPacket[]>(
        `SELECT error_class, COUNT(*) AS n, COUNT(DISTINCT task_key) AS tasks ` +
          `FROM sluice_attempts WHERE pipeline = ? GROUP BY error_class ORDER BY ` +
          `error_class`,
        [e.name],
      );
      assert.deepEqual(
        hist.map((r) => [String(r.error_class), Number(r.n), Number(r.tasks)]),
        [
          ['Error', 60, 20],
          ['StageTimeoutError', 60, 20],
        ],
        'three attempts recorded for each poisoned task',
      );

      const status = await e.cli('status', ['--json', '--check']);
      assert.equal(status.code, 1, '--check fails while tasks are quarantined');
      const s = JSON.parse(status.stdout) as {
        source: number;
        done: number;
        quarantined: number;
        pending: number;
        errors: Array<{ errorClass: string; count: number }>;
      };
      assert.equal(s.source, 2000);
      assert.equal(s.done, 1960);
      assert.equal(s.quarantined, 40);
      assert.equal(s.pending, 0);
      assert.deepEqual(s.errors.map((x) => x.errorClass).sort(), ['Error', 'StageTimeoutError']);

      const requeue = await e.cli('produce', ['--retry-dead']);
      assert.equal(requeue.code, 0, requeue.stderr);
      assert.match(requeue.stderr, /"published":40,.*"requeuedQuarantined":40/);
      e.start('fetch', [], { E2E_FIXED: '1' });
      e.start('work', [], { E2E_FIXED: '1' });
      await untilDone(e, (c) => c.results === 2000, 'the requeued tasks done once fixed');
      await e.stopAll();
      assert.equal((await e.counts()).quarantined, 0, 'a requeued task leaves quarantine');
      assert.equal((await e.cli('status', ['--check'])).code, 0);
    },
  );

  it(
    'quarantines malformed messages written to the topic by a plain Kafka ' +
      'client, with reasons, and finishes the job',
    async (t) => {
      const e = await harness(t, { rows: 1000, partitions: 2, stages: `[{ name: 'echo', run: async (p) => p }]` });
      await publishRaw(e.topic, [
        { key: 'a', value: 'this is not json' },
        { key: 'b', value: JSON.stringify({ v: 99, pipeline: e.name, key: 1, payload: {}, attempt: 1 }) },
        { key: 'c', value: JSON.stringify({ v: 1, pipeline: randomName('other'), key: 1, payload: {}, attempt: 1 }) },
        { key: 'd', value: '' },
        { key: 'e', value: JSON.stringify({ v: 1, pipeline: e.name, payload: {}, attempt: 1 }) },
        { key: 'f', value: Buffer.from([0xff, 0xfe, 0x00, 0x7b]) },
      ]);
      assert.equal((await e.cli('produce')).code, 0);
      const fetcher = e.start('fetch');
      e.start('work');
      await untilDone(e, (c) => c.results === 1000, '1000 results');
      await waitFor(
        '6 bad messages recorded',
        async () => {
          const [rows] = await e.db.query<RowDataPacket[]>(
            'SELECT COUNT(*) AS n FROM sluice_bad_messages WHERE pipeline = ?',
            [e.name],
          );
          return Number(rows[0]?.n) === 6;
        },
        20_000,
      );
      assert.deepEqual(await e.stopAll(), [0, 0]);
      const [bad] = await e.db.query<RowDataPacket[]>(
        'SELECT CONVERT(message_key USING utf8mb4) AS k, reason FROM sluice_bad_messages WHERE pipeline = ? ORDER BY k',
        [e.name],
      );
      // Each kind of bad message is recorded under the reason that names what is wrong with it.
      assert.deepEqual(Object.fromEntries(bad.map((r) => [String(r.k), String(r.reason)])), {
        a: 'not-json',
        b: 'unknown-version',
        c: 'other-pipeline',
        d: 'empty',
        e: 'bad-envelope',
        f: 'binary',
      });
      assert.match(fetcher.log(), /message quarantined/);
      assert.deepEqual(await e.mismatches(), { missing: 0, extra: 0 });
      const status = JSON.parse((await e.cli('status', ['--json'])).stdout) as { badMessages: number; done: number };
      assert.equal(status.badMessages, 6);
      assert.equal(status.done, 1000);
    },
  );
});

describe('every machine in sight', () => {
  it(
    'status lists two fetchers and three workers on two machines from their ' +
      'heartbeats; kill -9ed ones turn stale, stopped ones leave',
    async (t) => {
      const e = await harness(t, {
        rows: 3000,
        partitions: 2,
        stages:
          `[{ name: 'slow', run: async (p) => { await new Promise((r) => ` +
          `setTimeout(r, 20)); return p.body.length; } }]`,
      });
      const machines = [join(e.dir, 'machine-1'), join(e.dir, 'machine-2')];
      const fetchers = machines.map((m) => e.start('fetch', ['--spool-dir', m]));
      const workers = [
        e.start('work', ['--spool-dir', machines[0]!]),
        e.start('work', ['--spool-dir', machines[0]!]),
        e.start('work', ['--spool-dir', machines[1]!]),
      ];
      assert.equal((await e.cli('produce')).code, 0);
      type Row = { role: string; pid: number; host: string; stale: boolean; info: Record<string, unknown> };
      const processes = async (): Promise<Row[]> =>
        (JSON.parse((await e.cli('status', ['--json', '--estimate'])).stdout) as { processes: Row[] }).processes;
      const pids = (role: string, rows: Row[]): number[] =>
        rows
          .filter((p) => p.role === role)
          .map((p) => p.pid)
          .sort();
      await waitFor('all five processes in status', async () => (await processes()).length === 5, 30_000);
      const all = await processes();
      assert.deepEqual(pids('fetcher', all), fetchers.map((f) => f.child.pid!).sort());
      assert.deepEqual(pids('worker', all), workers.map((w) => w.child.pid!).sort());
      assert.ok(
        all.every((p) => !p.stale && p.host !== ''),
        JSON.stringify(all),
      );

      fetchers[1]!.child.kill('SIGKILL');
      workers[2]!.child.kill('SIGKILL');
      const dead = [fetchers[1]!.child.pid!, workers[2]!.child.pid!].sort();
      await waitFor(
        'the two killed processes to turn stale',
        async () => {
          const rows = await processes();
          return (
            rows
              .filter((p) => p.stale)
              .map((p) => p.pid)
              .sort()
              .join() === dead.join()
          );
        },
        40_000,
      );
      const later = await processes();
      assert.equal(later.filter((p) => !p.stale).length, 3, 'the live ones stay fresh');
      workers[0]!.child.kill('SIGTERM');
      assert.equal(await workers[0]!.exited, 0);
      const after = await processes();
      assert.ok(!after.some((p) => p.pid === workers[0]!.child.pid), 'a clean stop removes its row');
      assert.equal(after.length, 4);
    },
  );
});
