// The connection budget (docs/operations.md, "Connections"), counted by the server while a fleet works: every
// process of sluice holds at most database.poolSize connections, `run`'s fetcher and worker share one pool, and the
// dashboard under a stream of requests stays within its own. Status (here through the dashboard) says what
// the fleet holds.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it, type TestContext } from 'node:test';
import type { RowDataPacket } from 'mysql2/promise';
import { testDatabase } from '../helpers/db.js';
import { startE2E, type E2E } from '../helpers/e2e.js';
import { closedPort, ensureKafka } from '../helpers/kafka.js';
import { waitFor } from '../helpers/spool.js';

before(async () => {
  await ensureKafka();
});

async function harness(t: TestContext, opts: Omit<Parameters<typeof startE2E>[0], 'url'>): Promise<E2E> {
  const made: { e?: E2E } = {};
  t.after(() => made.e?.close());
  made.e = await startE2E({ url: await testDatabase(t), ...opts });
  return made.e;
}

interface Connections {
  poolSize: number;
  processes: number;
  heldByProcesses: number;
  heldHere: number | null;
  server: number | null;
}

const POOL = 2;
const ROWS = 12_000;

describe('the connection budget', () => {
  it(
    'a fetcher, six workers, a `run` process and a busy dashboard hold at ' +
      'most processes × database.poolSize connections',
    async (t) => {
      const e = await harness(t, {
        rows: ROWS,
        partitions: 4,
        config: { database: { poolSize: POOL } },
        stages:
          `[{ name: 'a', run: async (p) => { await new Promise((r) => setTimeout(r, ` +
          `1)); return { n: p.body.length }; } }, { name: 'b', run: async (x) => ` +
          `x.n * 2 }]`,
      });
      const produced = await e.cli('produce');
      assert.equal(produced.code, 0, produced.stderr);

      const [[me]] = await e.db.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
      const samples: number[] = [];
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const [[r]] = await e.db.query<RowDataPacket[]>(
            'SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> ?',
            [me?.id],
          );
          samples.push(Number(r?.n));
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      t.after(() => {
        sampling = false;
        return sampler;
      });

      const port = await closedPort();
      const [m1, m2] = [join(e.dir, 'machine-1'), join(e.dir, 'machine-2')];
      // The dashboard first, and busy before the fleet starts: the load covers the whole of the work.
      const dashboard = e.start('dashboard', ['--port', String(port)]);
      const processes = 9;
      await waitFor('the dashboard to listen', () => /"dashboard listening"/.test(dashboard.log()), 60_000);

      const api = `http://127.0.0.1:${port}/api/pipelines/${e.name}`;
      let reports: Connections[] = [];
      const unexpected: string[] = [];
      let loading = true;
      let requests = 0;
      // Four readers asking again as soon as answered, all the while the fleet works: more than the pool serves at
      // once.
      const reader = async (): Promise<void> => {
        while (loading) {
          const a = await fetch(api).then(
            async (r) => ({ status: r.status, body: (await r.json()) as { connections: Connections; error?: string } }),
            (err: unknown) => ({
              status: 0,
              body: { error: String(err) } as { connections: Connections; error?: string },
            }),
          );
          requests++;
          if (a.status === 200) reports.push(a.body.connections);
          else if (a.status !== 503) unexpected.push(`${a.status} ${a.body.error}`);
        }
      };
      const load = Promise.all(Array.from({ length: 4 }, reader));
      t.after(() => {
        loading = false;
        return load;
      });
      e.start('fetch', ['--spool-dir', m1]);
      for (let i = 0; i < 6; i++) e.start('work', ['--spool-dir', m1]);
      e.start('run', ['--spool-dir', m2]);
      await waitFor(`${ROWS} results`, async () => (await e.counts()).results === ROWS, 120_000);
      // Every process has beaten at least once by now: the fetcher, the six workers and `run` (two rows, one pid).
      await waitFor('the eight heartbeat processes in the report', () => reports.at(-1)?.processes === 8, 60_000).catch(
        (err: unknown) => {
          throw new Error(
            `${String(err)}; last reports ${JSON.stringify(reports.slice(-2))}; ` +
              `unexpected answers ${unexpected.slice(0, 3).join(' | ')}; ` +
              `dashboard log ${dashboard.log().slice(-3000)}`,
          );
        },
      );
      loading = false;
      await load;
      sampling = false;
      await sampler;
      assert.deepEqual(
        await e.stopAll(),
        Array.from({ length: processes }, () => 0),
        'every process exits 0 on SIGTERM',
      );

      assert.deepEqual(unexpected, [], 'the dashboard answers 200, or 503 when its pool is busy');
      const budget = processes * POOL;
      const most = Math.max(...samples);
      assert.ok(
        samples.length > 20 && requests >= 8,
        `sampled ${samples.length} times under ${requests} dashboard requests`,
      );
      assert.ok(most >= processes, `the sampler sees every process's connections (saw at most ${most})`);
      assert.ok(
        most <= budget,
        `at most ${processes} processes × poolSize ${POOL} = ${budget} connections at once, saw ${most}`,
      );

      const last = reports.at(-1)!;
      assert.equal(last.poolSize, POOL);
      assert.ok(
        last.heldByProcesses >= 8 && last.heldByProcesses <= 8 * POOL,
        `held by the processes, by their heartbeats: ${last.heldByProcesses}`,
      );
      assert.ok(
        last.heldHere !== null && last.heldHere >= 1 && last.heldHere <= POOL,
        `held by the dashboard: ${last.heldHere}`,
      );
      // The server counts this test's own connection too.
      assert.ok(
        last.server !== null && last.server >= 9 && last.server <= budget + 1,
        `sessions on the server: ${last.server}`,
      );
      reports = [];
      assert.deepEqual(await e.mismatches(), { missing: 0, extra: 0 });
    },
  );
});
