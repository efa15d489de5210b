// Workers against the real MariaDB and real spool files: stages run within their limits, milestones let a
// retry skip finished stages, failures retry or quarantine as documented, duplicates yield one result,
// and a graceful stop returns what is unfinished.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type Connection, type RowDataPacket } from 'mysql2/promise';
import type { StageConfig } from '../../src/config/config.js';
import { NonRetriableError, SpoolError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { startWorker } from '../../src/worker/worker.js';
import { spoolDepth } from '../../src/spool/depth.js';
import { spoolPaths } from '../../src/spool/layout.js';
import { SpoolWriter } from '../../src/spool/writer.js';
import { pipeline as definePipeline } from '../../src/worker/define.js';
import { randomName } from '../helpers/db.js';
import { fileDatabase, makeConfig } from '../helpers/fixtures.js';
import { spooledItems, waitFor } from '../helpers/spool.js';
import { workSetup } from '../helpers/work.js';

let url: string;
let db: Connection;
fileDatabase({ intSource: 100_000 }, (d) => ({ url, db } = d));

const keys = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

describe('work', () => {
  it(
    'ends a failed claim loop in close: done rejects with the spool error, ' +
      'its connections are closed, stop() after it is harmless',
    async (t) => {
      const { config, url: own } = await makeConfig(t, {
        worker: { pollMs: 20 },
        pipelines: {
          p: {
            topic: randomName('t'),
            source: { table: 'src', key: 'id', columns: [] },
            stages: [{ name: 'echo', run: async (x: unknown) => x }],
          },
        },
      });
      await db.query(`CREATE TABLE \`${new URL(own).pathname.slice(1)}\`.src (id INT PRIMARY KEY)`);
      // Connections to the worker's own database, as the server sees them.
      const connections = async (): Promise<number> => {
        const [rows] = await db.query<RowDataPacket[]>(
          'SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ?',
          [new URL(own).pathname.slice(1)],
        );
        return Number(rows[0]?.n);
      };
      const w = await startWorker({ config, pipeline: 'p', log: silentLogger() });
      assert.ok((await connections()) >= 1, 'a running worker holds a connection');
      const ready = join(w.paths.root, 'ready');
      rmSync(ready, { recursive: true });
      writeFileSync(ready, 'in the way');
      await assert.rejects(w.done, (e: unknown) => e instanceof SpoolError && /spool\.dir: cannot use/.test(e.message));
      // The pool has sent its quits by the time done rejects; the server drops a session a moment after its quit
      // arrives, so its count is read until it is 0 (a pool left open would hold it at 1 for good).
      await waitFor("the worker's connections to leave the server", async () => (await connections()) === 0, 2000);
      const t0 = performance.now();
      await assert.rejects(w.stop(), SpoolError);
      assert.ok(performance.now() - t0 < 100, 'stop() after the failure returns at once');
    },
  );

  it('runs every task through every stage, writing a milestone per stage and one result per task', async (t) => {
    const stages = definePipeline<{ n: number }>()
      .stage('double', async (p) => p.n * 2)
      .stage('describe', async (d, ctx) => ({ doubled: d, from: ctx.outputs.double, key: ctx.task.key }))
      .build();
    const s = await workSetup(t, db, url, stages);
    await s.spool(keys(100));
    const w = await s.start();
    const stats = await w.done;
    assert.equal(stats.done, 100);
    assert.equal(await s.count('sluice_results'), 100);
    assert.equal(await s.count('sluice_milestones'), 200);
    const [rows] = await db.query<RowDataPacket[]>(
      'SELECT output FROM sluice_results WHERE pipeline = ? AND task_key = ?',
      [s.name, '7'],
    );
    assert.deepEqual(typeof rows[0]?.output === 'string' ? JSON.parse(rows[0].output) : rows[0]?.output, {
      doubled: 14,
      from: 14,
      key: 7,
    });
    assert.equal((await spoolDepth(w.paths)).items, 0, 'finished segments leave the spool');
  });

  it('skips stages that have a milestone and reuses their stored output', async (t) => {
    let firstCalls = 0;
    const seen: unknown[] = [];
    const stages = definePipeline<{ n: number }>()
      .stage('slow', async (p) => {
        firstCalls++;
        return { v: p.n };
      })
      .stage('after', async (x) => {
        seen.push(x);
        return x;
      })
      .build();
    const s = await workSetup(t, db, url, stages);
    await db.query('INSERT INTO sluice_milestones (pipeline, task_key, stage, output, duration_ms) VALUES ?', [
      keys(5).map((k) => [s.name, String(k), 'slow', JSON.stringify({ v: k * 100 }), 1]),
    ]);
    await s.spool(keys(10));
    await (
      await s.start()
    ).done;
    assert.equal(firstCalls, 5, 'only the tasks without a milestone ran the first stage');
    assert.deepEqual(seen.filter((x) => (x as { v: number }).v >= 100).length, 5, 'the stored outputs were passed on');
    assert.equal(await s.count('sluice_results'), 10);
  });

  it('never runs more than a stage’s concurrency at once, and runs that many in parallel', async (t) => {
    let now = 0;
    let most = 0;
    const stages: StageConfig[] = [
      {
        name: 'narrow',
        concurrency: 3,
        run: async () => {
          most = Math.max(most, ++now);
          await new Promise((r) => setTimeout(r, 15));
          now--;
        },
      },
    ];
    const s = await workSetup(t, db, url, stages, { maxInFlight: 64 });
    await s.spool(keys(60));
    await (
      await s.start()
    ).done;
    assert.equal(most, 3);
  });

  it('holds a stage’s rate limit', async (t) => {
    const starts: number[] = [];
    const s = await workSetup(t, db, url, [
      { name: 'paced', concurrency: 10, ratePerSecond: 20, run: async () => void starts.push(performance.now()) },
    ]);
    await s.spool(keys(21));
    await (
      await s.start()
    ).done;
    starts.sort((a, b) => a - b);
    const span = starts[starts.length - 1]! - starts[0]!;
    assert.ok(span >= 950, `21 calls at 20/s span ${Math.round(span)} ms (>= 1000 expected)`);
    // Slots are 50 ms apart; a timer that fires a little late shortens the gap after it, never the run: any k
    // consecutive starts span at least k x 50 ms less one timer's lateness (10 ms allowed).
    for (let i = 0; i < starts.length; i++) {
      for (let j = i + 1; j < starts.length; j++)
        assert.ok(
          starts[j]! - starts[i]! >= (j - i) * 50 - 10,
          `starts ${i} and ${j} only ${Math.round(starts[j]! - starts[i]!)} ms apart`,
        );
    }
  });

  it('aborts a hanging stage at its timeout through its signal, counting it as a retriable failure', async (t) => {
    let aborted = 0;
    const hang: StageConfig = {
      name: 'hang',
      timeoutMs: 100,
      retry: { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 5 },
      run: (_input: unknown, ctx: { signal: AbortSignal }) =>
        new Promise((_, reject) =>
          ctx.signal.addEventListener('abort', () => (aborted++, reject(ctx.signal.reason as Error)), { once: true }),
        ),
    };
    const s = await workSetup(t, db, url, [hang]);
    await s.spool(['stuck']);
    const stats = await (await s.start()).done;
    assert.equal(stats.quarantined, 1);
    assert.equal(aborted, 2, 'the signal fired on each attempt');
    const [rows] = await db.query<RowDataPacket[]>(
      'SELECT error_class, retriable FROM sluice_attempts WHERE pipeline = ? ORDER BY attempt',
      [s.name],
    );
    assert.deepEqual(
      rows.map((r) => [String(r.error_class), Number(r.retriable)]),
      [
        ['StageTimeoutError', 1],
        ['StageTimeoutError', 1],
      ],
    );
  });

  it(
    'retries a retriable error after backoff; quarantines a NonRetriableError ' +
      'and a bug at once, with attempt history',
    async (t) => {
      const calls = new Map<string, number>();
      const stages: StageConfig[] = [
        {
          name: 'flaky',
          retry: { maxAttempts: 5, initialDelayMs: 5, maxDelayMs: 20 },
          run: async (p: { n: string }) => {
            const n = (calls.get(p.n) ?? 0) + 1;
            calls.set(p.n, n);
            if (p.n === 'flaky' && n <= 2)
              throw Object.assign(new Error('connection reset by peer'), { retriable: true });
            if (p.n === 'refused') throw new NonRetriableError('document is empty');
            if (p.n === 'bug') return (undefined as unknown as { x: number }).x;
            return 'ok';
          },
        },
      ];
      const s = await workSetup(t, db, url, stages);
      await s.spool(['flaky', 'refused', 'bug', 'fine']);
      const w = await s.start();
      const stats = await w.done;
      assert.deepEqual({ done: stats.done, quarantined: stats.quarantined }, { done: 2, quarantined: 2 });
      assert.deepEqual(Object.fromEntries(calls), { flaky: 3, refused: 1, bug: 1, fine: 1 });
      const [attempts] = await db.query<RowDataPacket[]>(
        'SELECT task_key, attempt, error_class, retriable FROM sluice_attempts ' +
          'WHERE pipeline = ? ORDER BY task_key, attempt',
        [s.name],
      );
      assert.deepEqual(
        attempts.map((r) => [
          Buffer.from(r.task_key as Buffer).toString(),
          Number(r.attempt),
          String(r.error_class),
          Number(r.retriable),
        ]),
        [
          ['bug', 1, 'TypeError', 0],
          ['flaky', 1, 'Error', 1],
          ['flaky', 2, 'Error', 1],
          ['refused', 1, 'NonRetriableError', 0],
        ],
      );
      const [dead] = await db.query<RowDataPacket[]>(
        'SELECT task_key, stage, error_class, attempts FROM sluice_dead_tasks WHERE pipeline = ? ORDER BY task_key',
        [s.name],
      );
      assert.deepEqual(
        dead.map((r) => [
          Buffer.from(r.task_key as Buffer).toString(),
          String(r.stage),
          String(r.error_class),
          Number(r.attempts),
        ]),
        [
          ['bug', 'flaky', 'TypeError', 1],
          ['refused', 'flaky', 'NonRetriableError', 1],
        ],
      );
      const q = readdirSync(w.paths.quarantine).map(
        (f) => JSON.parse(readFileSync(join(w.paths.quarantine, f), 'utf8')) as { source: string; reason: string },
      );
      assert.equal(q.length, 2);
      for (const e of q) assert.deepEqual([e.source, e.reason], ['worker', 'task-failed']);
      assert.equal(await s.count('sluice_results'), 2);
    },
  );

  it('a duplicate delivery yields exactly one result and runs the stages once', async (t) => {
    let calls = 0;
    const s = await workSetup(t, db, url, [{ name: 'once', concurrency: 1, run: async () => ++calls }]);
    await s.spool([1, 2, 3]);
    await (
      await s.start()
    ).done;
    await s.spool([1, 2, 3, 1]);
    await (
      await s.start()
    ).done;
    assert.equal(calls, 3);
    assert.equal(await s.count('sluice_results'), 3);
  });

  it('two workers on one spool never run the same task, and together run all of them', async (t) => {
    const runs = new Map<number, number>();
    const s = await workSetup(t, db, url, [
      {
        name: 'count',
        concurrency: 4,
        run: async (p: { n: number }) => (
          runs.set(p.n, (runs.get(p.n) ?? 0) + 1),
          await new Promise((r) => setTimeout(r, 2))
        ),
      },
    ]);
    await s.spool(keys(400), { perSegment: 20 });
    const [a, b] = await Promise.all([s.start(), s.start()]);
    const [sa, sb] = await Promise.all([a.done, b.done]);
    assert.equal(sa.done + sb.done, 400);
    assert.ok(sa.done > 0 && sb.done > 0, `shared: ${sa.done}/${sb.done}`);
    assert.equal(runs.size, 400);
    assert.deepEqual([...new Set(runs.values())], [1]);
  });

  it('renews the lease while a stage runs longer than it, so no other worker takes the segment back', async (t) => {
    const runs = new Map<number, number>();
    const s = await workSetup(
      t,
      db,
      url,
      [
        {
          name: 'long',
          concurrency: 4,
          run: async (p: { n: number }) => (
            runs.set(p.n, (runs.get(p.n) ?? 0) + 1),
            await new Promise((r) => setTimeout(r, 900))
          ),
        },
      ],
      {},
      { leaseMs: 300 },
    );
    await s.spool(keys(4), { perSegment: 4 });
    const [a, b] = await Promise.all([s.start(), s.start()]);
    await Promise.all([a.done, b.done]);
    assert.deepEqual([...runs.values()], [1, 1, 1, 1], 'each task ran once although the stage outlived three leases');
  });

  it(
    'a graceful stop lets running stages finish within the grace period, ' +
      'aborts the rest, and returns unfinished items',
    async (t) => {
      let finished = 0;
      const s = await workSetup(
        t,
        db,
        url,
        [
          {
            name: 'slow',
            concurrency: 2,
            run: (_p: unknown, ctx: { signal: AbortSignal; task: { key: unknown } }) =>
              new Promise((resolve, reject) => {
                const t = setTimeout(
                  () => (finished++, resolve('ok')),
                  ctx.task.key === 1 || ctx.task.key === 2 ? 50 : 10_000,
                );
                ctx.signal.addEventListener('abort', () => (clearTimeout(t), reject(ctx.signal.reason as Error)), {
                  once: true,
                });
              }),
          },
        ],
        { shutdownGraceMs: 300 },
      );
      await s.spool(keys(20), { perSegment: 20 });
      const w = await s.start(false);
      await new Promise((r) => setTimeout(r, 200));
      const t0 = performance.now();
      const stats = await w.stop();
      assert.ok(performance.now() - t0 < 2000, 'stops within the grace period');
      assert.equal(stats.done, finished);
      assert.equal(stats.done + stats.returned, 20);
      assert.ok(stats.returned >= 16, `returned ${stats.returned}`);
      const back = spooledItems(w.paths.root).map((i) => i.task.key);
      assert.equal(back.length, stats.returned, 'the unfinished items are back in ready/');
      assert.equal(await s.count('sluice_results'), stats.done);
      assert.equal(await s.count('sluice_attempts'), 0, 'an abort by shutdown is not a failure of the task');
    },
  );
});

describe('npm run work (separate processes)', () => {
  it(
    'kill -9 mid-stage, then restart: the items complete once the lease ' + 'expires; SIGTERM drains and exits 0',
    async (t) => {
      const { writeFileSync, readFileSync: read, existsSync } = await import('node:fs');
      const { spawnCli, tempDir } = await import('../helpers/fixtures.js');
      const { waitFor } = await import('../helpers/spool.js');
      const name = randomName('k');
      const dir = tempDir(t, 'sluice-work-kill-');
      const started = join(dir, 'started.log');
      writeFileSync(
        join(dir, 'sluice.config.ts'),
        `import { appendFileSync } from 'node:fs';
export default {
  spool: { dir: ${JSON.stringify(join(dir, 'spool'))}, leaseMs: 1500 },
  worker: { pollMs: 50, shutdownGraceMs: 500 },
  pipelines: { ${name}: { topic: 't', source: { table: 'unused', key: 'id', columns: [] }, ` +
          `stages: [
    { name: 'slow', concurrency: 4, run: async (p, ctx) => {
        appendFileSync(${JSON.stringify(started)}, ctx.task.key + '\\n');
        await new Promise((r, j) => { const t = setTimeout(r, ` +
          `Number(process.env.STAGE_MS)); ctx.signal.addEventListener('abort', () ` +
          `=> { clearTimeout(t); j(ctx.signal.reason); }); });
        return { ok: ctx.task.key };
    } },
  ] } },
};
`,
      );
      const writer = new SpoolWriter(spoolPaths(join(dir, 'spool'), name), 100);
      await writer.open();
      await writer.writeItems(
        0,
        keys(20).map((key, i) => ({
          partition: 0,
          offset: String(i),
          task: { v: 1, pipeline: name, key, payload: {}, attempt: 1, runId: 'r', producedAt: '' },
        })),
      );
      const env = { DATABASE_URL: url, SLUICE_CONFIG: join(dir, 'sluice.config.ts'), SLUICE_LOG_LEVEL: 'warn' };
      const work = (stageMs: number, ...extra: string[]) =>
        spawnCli(t, ['work', '--pipeline', name, ...extra], { env: { ...env, STAGE_MS: String(stageMs) } });
      const exitOf = (c: ReturnType<typeof work>) => c.exited;
      // Fails the test (with what it waited for) instead of going on as if the stages had started.
      const waitLines = (n: number) =>
        waitFor(
          `${n} stage starts`,
          () => existsSync(started) && read(started, 'utf8').trim().split('\n').length >= n,
          15_000,
        );

      const first = work(60_000);
      await waitLines(4);
      first.child.kill('SIGKILL');
      await exitOf(first);
      const paths = spoolPaths(join(dir, 'spool'), name);
      assert.equal(readdirSync(paths.claimed).length, 1, 'the dead worker still holds its segment');

      const second = work(20, '--exit-when-idle');
      assert.equal(await exitOf(second), 0);
      const [rows] = await db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sluice_results WHERE pipeline = ?', [
        name,
      ]);
      assert.equal(Number(rows[0]?.n), 20, 'every item completed once the lease expired');
      assert.equal((await spoolDepth(paths)).items, 0);

      // Two worker processes on one spool: every task runs once.
      await writer.writeItems(
        0,
        keys(200).map((k, i) => ({
          partition: 0,
          offset: String(500 + i),
          task: { v: 1, pipeline: name, key: 5000 + k, payload: {}, attempt: 1, runId: 'r', producedAt: '' },
        })),
      );
      const lines = read(started, 'utf8').trim().split('\n').length;
      const [p1, p2] = [work(5, '--exit-when-idle'), work(5, '--exit-when-idle')];
      assert.deepEqual(await Promise.all([exitOf(p1), exitOf(p2)]), [0, 0]);
      const ran = read(started, 'utf8')
        .trim()
        .split('\n')
        .slice(lines)
        .filter((k) => Number(k) > 5000);
      assert.equal(ran.length, 200, 'every task ran');
      assert.equal(new Set(ran).size, 200, 'no task ran twice');

      // Graceful: SIGTERM while stages run long -> exit 0, unfinished items back in ready/.
      await writer.writeItems(
        0,
        keys(10).map((k, i) => ({
          partition: 0,
          offset: String(100 + i),
          task: { v: 1, pipeline: name, key: 1000 + k, payload: {}, attempt: 1, runId: 'r', producedAt: '' },
        })),
      );
      const third = work(60_000);
      const before = read(started, 'utf8').trim().split('\n').length;
      await waitLines(before + 4);
      third.child.kill('SIGTERM');
      assert.equal(await exitOf(third), 0);
      assert.equal(readdirSync(paths.claimed).length, 0);
      assert.equal(spooledItems(paths.root).length, 10, 'all 10 unfinished items are back in ready/');
    },
  );
});

describe('npm run run (fetch and work in one process)', () => {
  it('takes tasks from Kafka to result rows, and exits 0 on SIGTERM', async (t) => {
    const { writeFileSync } = await import('node:fs');
    const { spawnCli, tempDir } = await import('../helpers/fixtures.js');
    const { BROKERS, ensureKafka } = await import('../helpers/kafka.js');
    const { createTopic, publishRaw, tasks, waitFor } = await import('../helpers/spool.js');
    await ensureKafka();
    const name = randomName('r');
    const topic = randomName('sluice-run');
    await createTopic(topic, 2);
    await publishRaw(topic, tasks(name, 150));
    const dir = tempDir(t, 'sluice-run-');
    writeFileSync(
      join(dir, 'sluice.config.ts'),
      `export default { fetcher: { ` +
        `groupId: ${JSON.stringify(randomName('g'))} }, ` +
        `spool: { dir: ${JSON.stringify(join(dir, 'spool'))} }, worker: { ` +
        `pollMs: 20 },
  pipelines: { ${name}: ` +
        `{ topic: ${JSON.stringify(topic)}, partitions: 2, source: { table: ` +
        `'unused', key: 'id', columns: [] },
    stages: [{ name: 'echo', run: ` +
        `async (p) => p }] } } };\n`,
    );
    const run = spawnCli(t, ['run', '--pipeline', name], {
      env: {
        DATABASE_URL: url,
        SLUICE_KAFKA_BROKERS: BROKERS.join(','),
        SLUICE_CONFIG: join(dir, 'sluice.config.ts'),
        SLUICE_LOG_LEVEL: 'warn',
      },
    });
    try {
      await waitFor(
        '150 results',
        async () => {
          const [rows] = await db.query<RowDataPacket[]>(
            'SELECT COUNT(*) AS n FROM sluice_results WHERE pipeline = ?',
            [name],
          );
          return Number(rows[0]?.n) === 150;
        },
        60_000,
      );
    } finally {
      run.child.kill('SIGTERM');
    }
    assert.equal(await run.exited, 0, run.stderr());
  });
});
