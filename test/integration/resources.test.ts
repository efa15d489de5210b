// Fleet-wide resources against the real database, with worker processes (the CLI) on two spool folders
// ("machines") calling a test service that records every call: the hard cap holds while processes die, join
// and lose the database; the fleet-wide rate holds; a dead process's share is used by the others.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { silentLogger } from '../../src/core/logger.js';
import { migrate } from '../../src/db/migrate.js';
import { spoolPaths } from '../../src/spool/layout.js';
import { SpoolWriter } from '../../src/spool/writer.js';
import { dbConfig, randomName } from '../helpers/db.js';
import { fileDatabase, spawnCli, tempDir, type CliProcess } from '../helpers/fixtures.js';
import { startPrivateMariaDB } from '../helpers/mariadb.js';
import { waitFor } from '../helpers/spool.js';
import { runCli } from '../helpers/cli.js';
import { closedPort } from '../helpers/kafka.js';
import { startNerService } from '../../src/demo/ner-service.js';

let url: string;
let db: Connection;
fileDatabase({}, (d) => ({ url, db } = d));

/** A service that holds each call `holdMs` and records how many were in it at once, and when each started. */
interface TestService {
  url: string;
  inFlight: () => number;
  most: () => number;
  starts: number[];
  /** [time, calls in flight] at every change. */
  timeline: Array<[number, number]>;
}

async function testService(t: TestContext, holdMs: number): Promise<TestService> {
  let now = 0;
  let most = 0;
  const starts: number[] = [];
  const timeline: Array<[number, number]> = [];
  const server: Server = createServer((_req, res) => {
    now++;
    most = Math.max(most, now);
    starts.push(performance.now());
    timeline.push([performance.now(), now]);
    setTimeout(() => {
      now--;
      timeline.push([performance.now(), now]);
      res.end('{}');
    }, holdMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/`,
    inFlight: () => now,
    most: () => most,
    starts,
    timeline,
  };
}

interface Fleet {
  name: string;
  machines: string[];
  env: Record<string, string>;
  start(machine: number, ...args: string[]): CliProcess;
  results(): Promise<number>;
}

/** A pipeline whose one stage calls the service through resource 'svc'; `tasks` keys spooled over two machines. */
/** A stage body (as config text) that calls the service and returns its HTTP status. */
function fetchStatus(url: string | undefined): string {
  const call = `fetch(${JSON.stringify(url)}, { signal: ctx.signal })`;
  return `async (_p, ctx) => { const r = await ${call}; return r.status; }`;
}

async function fleet(
  t: TestContext,
  opts: { resource: string; tasks: number; serviceUrl: string; databaseUrl?: string; conn?: Connection; run?: string },
): Promise<Fleet> {
  const name = randomName('res');
  const dir = tempDir(t, 'sluice-resources-');
  const conn = opts.conn ?? db;
  await conn.query(`CREATE TABLE \`${name}\` (id INT PRIMARY KEY)`);
  await conn.query(`INSERT INTO \`${name}\` (id) VALUES ?`, [Array.from({ length: opts.tasks }, (_, i) => [i + 1])]);
  const machines = [join(dir, 'machine-a'), join(dir, 'machine-b')];
  for (const [m, machine] of machines.entries()) {
    const writer = new SpoolWriter(spoolPaths(machine, name), 20);
    await writer.open();
    const keys = Array.from({ length: opts.tasks }, (_, i) => i + 1).filter((k) => k % 2 === m);
    await writer.writeItems(
      0,
      keys.map((key) => ({
        partition: 0,
        offset: String(key),
        task: { v: 1, pipeline: name, key, payload: {}, attempt: 1, runId: 'r', producedAt: '' },
      })),
    );
  }
  const config = join(dir, 'sluice.config.ts');
  writeFileSync(
    config,
    [
      'export default {',
      '  worker: { pollMs: 20, shutdownGraceMs: 2000 },',
      '  spool: { leaseMs: 3000 },',
      `  resources: { svc: ${opts.resource} },`,
      `  pipelines: { ${name}: { topic: 't', source: { table: '${name}', key: 'id', columns: [] }, stages: [`,
      "    { name: 'call', resource: 'svc', concurrency: 16, timeoutMs: 2000,",
      '      retry: { maxAttempts: 20, initialDelayMs: 50, maxDelayMs: 200 },',
      `      run: ${opts.run ?? fetchStatus(opts.serviceUrl)} },`,
      '  ] } },',
      '};',
      '',
    ].join('\n'),
  );
  const env = { DATABASE_URL: opts.databaseUrl ?? url, SLUICE_CONFIG: config, SLUICE_LOG_LEVEL: 'info' };
  return {
    name,
    machines,
    env,
    start: (m, ...args) =>
      spawnCli(t, ['work', '--pipeline', name, '--spool-dir', machines[m]!, ...args], {
        env,
        log: join(dir, `work-${m}-${randomName('p')}.log`),
      }),
    results: async () => {
      const [rows] = await conn.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sluice_results WHERE pipeline = ?', [
        name,
      ]);
      return Number(rows[0]?.n);
    },
  };
}

describe('a fleet-wide concurrency limit', () => {
  it(
    'never lets more than 4 calls in at once over 3 processes on 2 machines, while one is killed -9 ' +
      'and another joins; the dead share is reused within its lease',
    async (t) => {
      const svc = await testService(t, 60);
      const f = await fleet(t, { resource: '{ concurrency: 4 }', tasks: 600, serviceUrl: svc.url });
      const workers = [f.start(0), f.start(1), f.start(0)];
      await waitFor('calls under way', () => svc.starts.length >= 60, 30_000);
      workers[0]!.child.kill('SIGKILL');
      const killedAt = performance.now();
      await workers[0]!.exited;
      workers.push(f.start(1));
      await waitFor('every task done', async () => (await f.results()) === 600, 90_000);
      for (const w of workers.slice(1)) w.child.kill('SIGTERM');
      assert.deepEqual(await Promise.all(workers.slice(1).map((w) => w.exited)), [0, 0, 0]);
      assert.ok(svc.most() <= 4, `at most 4 calls in the service at once, saw ${svc.most()}`);
      assert.equal(svc.most(), 4, 'the limit was used');
      // The lease is the stage timeout (2 s) + 3 s: after it, the others have the whole limit again.
      const reused = svc.timeline.some(([at, n]) => at > killedAt + 5000 && at < killedAt + 9000 && n === 4);
      assert.ok(reused, 'all 4 calls in flight again within the dead process lease (plus renewal)');
    },
  );

  it(
    'shares one limit between two pipelines (processes of each) and gives a ' + 'stopped process share back at once',
    async (t) => {
      const svc = await testService(t, 40);
      const a = await fleet(t, { resource: '{ concurrency: 6 }', tasks: 300, serviceUrl: svc.url });
      const b = await fleet(t, { resource: '{ concurrency: 6 }', tasks: 300, serviceUrl: svc.url });
      const ws = [a.start(0), a.start(1), b.start(0), b.start(1)];
      await waitFor('both done', async () => (await a.results()) === 300 && (await b.results()) === 300, 90_000);
      for (const w of ws) w.child.kill('SIGTERM');
      await Promise.all(ws.map((w) => w.exited));
      assert.ok(svc.most() <= 6, `at most 6 at once over both pipelines, saw ${svc.most()}`);
      const [rows] = await db.query<RowDataPacket[]>(
        "SELECT COUNT(*) AS n FROM sluice_resource_shares WHERE resource = 'svc'",
      );
      assert.equal(Number(rows[0]?.n), 0, 'a clean stop leaves no share behind');
    },
  );
});

describe('watching a fleet', () => {
  it(
    'status shows the resource and every worker process, a kill -9ed one as ' + 'stale; metrics show limit and share',
    async (t) => {
      const svc = await testService(t, 60);
      const f = await fleet(t, { resource: '{ concurrency: 4 }', tasks: 2000, serviceUrl: svc.url });
      const port = await closedPort();
      const [a, b] = [f.start(0, '--metrics-port', String(port)), f.start(1)];
      await waitFor('calls under way', () => svc.starts.length >= 40, 30_000);
      interface Status {
        resources: Array<{ name: string; limit: number; inFlight: number; processes: unknown[] }>;
        processes: Array<{ role: string; stale: boolean }>;
      }
      const status = async (): Promise<Status> =>
        JSON.parse(
          (await runCli(['status', '--pipeline', f.name, '--json', '--estimate'], { env: f.env })).stdout,
        ) as Status;
      const s = await status();
      assert.equal(s.resources[0]!.name, 'svc');
      assert.equal(s.resources[0]!.limit, 4);
      assert.ok(
        s.resources[0]!.processes.length === 2 && s.resources[0]!.inFlight <= 4,
        JSON.stringify(s.resources[0]),
      );
      assert.deepEqual(
        s.processes.map((p) => [p.role, p.stale]),
        [
          ['worker', false],
          ['worker', false],
        ],
      );
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(metrics, /^sluice_resource_limit\{resource="svc"\} 4$/m);
      assert.match(metrics, /^sluice_resource_share\{resource="svc"\} [1-4]$/m);
      b.child.kill('SIGKILL');
      await waitFor(
        'the killed worker to show as stale',
        async () => (await status()).processes.some((p) => p.stale),
        30_000,
      );
      a.child.kill('SIGTERM');
      assert.equal(await a.exited, 0);
      assert.equal((await status()).processes.length, 1, 'a clean stop removes its row; the dead one stays, stale');
    },
  );
});

describe('a learned limit (concurrency auto)', () => {
  it('rises from min toward the service slots, and falls when the capacity is lowered', async (t) => {
    const ner = await startNerService({ slots: 4, randomResetRate: 0, minLatencyMs: 40, maxLatencyMs: 60 });
    t.after(() => ner.close());
    const call = `fetch(${JSON.stringify(ner.url)}, { method: 'POST', body: '{"text":"x"}', signal: ctx.signal })`;
    const failed = "if (ctx.signal.aborted) throw e; throw new Error('call failed', { cause: e });";
    const run = `async (_p, ctx) => { try { const r = await ${call}; return r.status; } catch (e) { ${failed} } }`;
    const f = await fleet(t, {
      resource: "{ concurrency: 'auto', min: 1, max: 32 }",
      tasks: 4000,
      serviceUrl: ner.url,
      run,
    });
    const ws = [f.start(0), f.start(1)];
    const learned = async (): Promise<number> => {
      const [rows] = await db.query<RowDataPacket[]>("SELECT learned_limit FROM sluice_resources WHERE name = 'svc'");
      return Number(rows[0]?.learned_limit ?? 0);
    };
    await db.query("DELETE FROM sluice_resources WHERE name = 'svc'");
    await waitFor('the limit to rise from 1 to the slots (4) or more', async () => (await learned()) >= 4, 30_000);
    let high = 0;
    const until = performance.now() + 5000;
    while (performance.now() < until) {
      high = Math.max(high, await learned());
      await new Promise((r) => setTimeout(r, 250));
    }
    ner.setSlots(1);
    await waitFor(
      `the limit to fall well below ${high.toFixed(1)} once the service has 1 slot`,
      async () => (await learned()) <= Math.max(2, high * 0.6),
      30_000,
    );
    for (const w of ws) w.child.kill('SIGTERM');
    assert.deepEqual(await Promise.all(ws.map((w) => w.exited)), [0, 0]);
  });
});

describe('a fleet-wide rate limit', () => {
  it('keeps every one-second window of 3 processes within ratePerSecond + burst', async (t) => {
    const svc = await testService(t, 2);
    const f = await fleet(t, { resource: '{ ratePerSecond: 50, burst: 5 }', tasks: 400, serviceUrl: svc.url });
    const ws = [f.start(0), f.start(1), f.start(0)];
    await waitFor('every task done', async () => (await f.results()) === 400, 60_000);
    for (const w of ws) w.child.kill('SIGTERM');
    await Promise.all(ws.map((w) => w.exited));
    const s = [...svc.starts].sort((x, y) => x - y);
    let most = 0;
    for (let i = 0, j = 0; i < s.length; i++) {
      while (s[i]! - s[j]! >= 1000) j++;
      most = Math.max(most, i - j + 1);
    }
    assert.ok(most <= 55, `the busiest second held ${most} calls (50/s + burst 5)`);
    assert.ok(most >= 40, `the rate was used (${most} in the busiest second)`);
  });
});

describe('a database outage while shares are held', () => {
  const maria = startPrivateMariaDB();
  after(async () => (await maria).stop());

  it(
    'stops calls when the leases run out, never passes the limit, and ' + 'resumes once the database is back',
    async (t) => {
      const server = await maria;
      const own = server.url(randomName('sluice_outage'));
      await migrate(dbConfig(own), silentLogger());
      const conn = await mysql.createConnection(own);
      t.after(() => conn.end().catch(() => {}));
      const svc = await testService(t, 50);
      const f = await fleet(t, {
        resource: '{ concurrency: 4 }',
        tasks: 500,
        serviceUrl: svc.url,
        databaseUrl: own,
        conn,
      });
      const ws = [f.start(0), f.start(1)];
      await waitFor('calls under way', () => svc.starts.length >= 40, 30_000);
      await server.kill();
      const downAt = performance.now();
      await new Promise((r) => setTimeout(r, 8000));
      const quiet = svc.timeline.filter(([at]) => at > downAt + 5000).every(([, n]) => n === 0);
      await server.restart();
      await conn.end().catch(() => {});
      const again = await mysql.createConnection(own);
      t.after(() => again.end());
      await waitFor(
        'every task done after the outage',
        async () => {
          const [rows] = await again.query<RowDataPacket[]>(
            'SELECT COUNT(*) AS n FROM sluice_results WHERE pipeline = ?',
            [f.name],
          );
          return Number(rows[0]?.n) === 500;
        },
        120_000,
      );
      for (const w of ws) w.child.kill('SIGTERM');
      await Promise.all(ws.map((w) => w.exited));
      assert.ok(svc.most() <= 4, `at most 4 at once through the outage, saw ${svc.most()}`);
      assert.ok(quiet, 'no call in the service once the leases (2 s timeout + 3 s) ran out during the outage');
    },
  );
});
