// `sluice dashboard`'s JSON API against the real database and broker: every endpoint's shape, filters,
// requeue by filter (count first, then the tasks published), the token rule off loopback, read-only mode.
import assert from 'node:assert/strict';
import { before, describe, it, type TestContext } from 'node:test';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { mergeLayers, type SluiceConfig, type SluiceConfigInput } from '../../src/config/config.js';
import { validateConfig } from '../../src/config/validate.js';
import { ConfigError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { startDashboard } from '../../src/dashboard/server.js';
import type { StatusReport } from '../../src/status/collect.js';
import { randomName } from '../helpers/db.js';
import { fileDatabase } from '../helpers/fixtures.js';
import { BROKERS, closedPort, ensureKafka } from '../helpers/kafka.js';
import { countMessages } from '../helpers/topic.js';

let url: string;
let db: Connection;
const name = randomName('dash');
const topic = randomName('sluice-dash');
before(() => ensureKafka());
fileDatabase({ seed: ({ db }) => seed(db) }, (d) => ({ url, db } = d));

async function seed(db: Connection): Promise<void> {
  await db.query(`CREATE TABLE \`${name}\` (id INT PRIMARY KEY, body VARCHAR(20) NOT NULL)`);
  await db.query(`INSERT INTO \`${name}\` SELECT seq, 'x' FROM seq_1_to_100`);
  // 60 done, 10 quarantined by a timeout, 5 by a bug; the rest pending.
  await db.query(
    `INSERT INTO sluice_results (pipeline, task_key, output, attempts, ` +
      `started_at, finished_at, duration_ms) SELECT ?, CAST(seq AS CHAR), ` +
      `'null', 1, NOW(3), NOW(3), 5 FROM seq_1_to_60`,
    [name],
  );
  await db.query(
    `INSERT INTO sluice_milestones (pipeline, task_key, stage, output, ` +
      `duration_ms, attempt) SELECT ?, CAST(seq AS CHAR), 'ner', 'null', seq, 1 ` +
      `FROM seq_1_to_60`,
    [name],
  );
  await db.query(
    `INSERT INTO sluice_dead_tasks (pipeline, task_key, stage, error_class, ` +
      `error_message, attempts, payload) SELECT ?, CAST(seq AS CHAR), 'ner', ` +
      `IF(seq <= 70, 'StageTimeoutError', 'TypeError'), 'failed', 3, '{}' FROM ` +
      `seq_61_to_75`,
    [name],
  );
  await db.query(
    `INSERT INTO sluice_attempts (pipeline, task_key, stage, attempt, ` +
      `error_class, error_message, retriable) SELECT ?, CAST(seq AS CHAR), ` +
      `'ner', 1, 'StageTimeoutError', 'timed out', 1 FROM seq_61_to_70`,
    [name],
  );
}

async function dashboard(
  t: TestContext,
  layer: SluiceConfigInput['dashboard'] = {},
  version?: string,
): Promise<{ base: string; config: SluiceConfig }> {
  const config = validateConfig(
    mergeLayers(
      {
        database: { url },
        kafka: { brokers: BROKERS },
        pipelines: {
          [name]: {
            topic,
            partitions: 2,
            source: { table: name, key: 'id', columns: ['body'] },
            stages: [{ name: 'ner', run: async () => null, version }],
          },
        },
      },
      { dashboard: { port: await closedPort(), ...layer } },
    ),
  );
  const d = await startDashboard({ config, log: silentLogger() });
  t.after(() => d.close());
  return { base: d.url.replace(/\/$/, '').replace('0.0.0.0', '127.0.0.1'), config };
}

interface Requeue {
  matched: number;
  hash: string;
  requeued: number;
  published: number;
  dryRun?: boolean;
  error?: string;
}

/** The body as JSON when the server says so, else its text; each test says what it expects to read. */
const get = async (
  base: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: unknown }> => {
  const r = await fetch(base + path, { headers });
  return {
    status: r.status,
    body: (r.headers.get('content-type') ?? '').includes('json') ? ((await r.json()) as unknown) : await r.text(),
  };
};
const post = async (
  base: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Requeue }> => {
  const r = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as Requeue };
};

describe('the dashboard API', () => {
  it('lists pipelines and shows one: counts, ETA, bottleneck, resources, machines', async (t) => {
    const { base } = await dashboard(t);
    const list = await get(base, '/api/pipelines');
    assert.deepEqual(list.body, [{ name, topic, table: name, stages: ['ner'] }]);
    const s = (await get(base, `/api/pipelines/${name}?exact=1`)).body as StatusReport;
    assert.deepEqual([s.source, s.done, s.quarantined, s.pending, s.exact], [100, 60, 15, 25, true]);
    assert.ok('etaSeconds' in s && 'bottleneck' in s);
    assert.deepEqual([s.resources, s.processes], [[], []]);
    assert.equal((await get(base, '/api/pipelines/nope')).status, 404);
    const page = await get(base, '/');
    assert.match(page.body as string, /<title>sluice dashboard<\/title>/);
    assert.match((await get(base, '/assets/uplot.js')).body as string, /uPlot/);
  });

  it('gives per-stage throughput and latency over time', async (t) => {
    const { base } = await dashboard(t);
    const series = (await get(base, `/api/pipelines/${name}/stages?minutes=60`)).body as Record<string, unknown>;
    const points = series.ner as Array<{ done: number; p50Ms: number; p99Ms: number }>;
    assert.equal(
      points.reduce((a, p) => a + p.done, 0),
      60,
    );
    assert.ok(points.every((p) => p.p50Ms >= 1 && p.p99Ms <= 60 && p.p50Ms <= p.p99Ms));
    assert.equal((await get(base, `/api/pipelines/${name}/stages?minutes=0`)).status, 400);
  });

  it("gives each stage's failed tries of the last minute and their share of all tries", async (t) => {
    const { base } = await dashboard(t);
    await db.query(
      `INSERT INTO sluice_attempts (pipeline, task_key, stage, attempt, ` +
        `error_class, error_message, retriable) SELECT ?, CONCAT('r', seq), ` +
        `'ner', 1, 'Error', 'reset', 1 FROM seq_1_to_4`,
      [name],
    );
    await db.query(
      'INSERT INTO sluice_attempts (pipeline, task_key, stage, attempt, ' +
        "error_class, error_message, retriable, created_at) VALUES (?, 'old', " +
        "'ner', 1, 'Error', 'reset', 1, NOW(3) - INTERVAL 5 MINUTE)",
      [name],
    );
    const [[recent]] = await db.query<RowDataPacket[]>(
      'SELECT COUNT(*) AS n FROM sluice_attempts WHERE pipeline = ? AND created_at > NOW(3) - INTERVAL 50 SECOND',
      [name],
    );
    const ner = ((await get(base, `/api/pipelines/${name}`)).body as { stages: unknown[] }).stages[0] as {
      stage: string;
      failedLastMinute: number;
      retryRatio: number;
    };
    assert.equal(ner.stage, 'ner');
    assert.ok(
      ner.failedLastMinute >= Number(recent?.n) && ner.failedLastMinute <= 14,
      `failed ${ner.failedLastMinute}, 4 new + at most the 10 seeded`,
    );
    assert.ok(ner.retryRatio > 0 && ner.retryRatio <= 1, `ratio ${ner.retryRatio}`);
  });

  it('finds quarantined tasks by key and by error class, and shows a task timeline', async (t) => {
    const { base } = await dashboard(t);
    type Quarantine = { total: number; classes: unknown[]; tasks: Array<{ key: string }> };
    const byClass = (await get(base, `/api/pipelines/${name}/quarantine?errorClass=StageTimeoutError`))
      .body as Quarantine;
    assert.equal(byClass.total, 10);
    assert.deepEqual(byClass.classes, [
      { errorClass: 'StageTimeoutError', count: 10 },
      { errorClass: 'TypeError', count: 5 },
    ]);
    const byKey = (await get(base, `/api/pipelines/${name}/quarantine?key=72`)).body as Quarantine;
    assert.deepEqual(
      byKey.tasks.map((x) => x.key),
      ['72'],
    );
    const task = (await get(base, `/api/pipelines/${name}/tasks/65`)).body as { state: string; attempts: unknown[] };
    assert.equal(task.state, 'quarantined');
    assert.equal(task.attempts.length, 1);
    assert.equal((await get(base, `/api/pipelines/${name}/quarantine?since=yesterday`)).status, 400);
  });

  it(
    'requeues by filter: the count and hash first, then exactly the confirmed ' +
      'tasks leave quarantine and are published',
    async (t) => {
      const { base } = await dashboard(t);
      const dry = await post(
        base,
        `/api/pipelines/${name}/requeue`,
        { filter: { errorClass: 'TypeError' }, dryRun: true },
        { origin: base },
      );
      assert.deepEqual(
        { ...dry.body, hash: typeof dry.body.hash },
        { matched: 5, hash: 'string', requeued: 0, published: 0, dryRun: true },
      );
      const done = await post(
        base,
        `/api/pipelines/${name}/requeue`,
        { filter: { errorClass: 'TypeError' }, expect: { count: 5, hash: dry.body.hash } },
        { origin: base },
      );
      assert.equal(done.status, 200, JSON.stringify(done.body));
      assert.equal(done.body.requeued, 5);
      // Only what it requeued: the 25 other pending tasks wait for the next produce (no pass over the whole source).
      assert.equal(done.body.published, 5);
      const [rows] = await db.query<RowDataPacket[]>(
        "SELECT COUNT(*) AS n FROM sluice_dead_tasks WHERE pipeline = ? AND error_class = 'TypeError'",
        [name],
      );
      assert.equal(Number(rows[0]?.n), 0);
      assert.equal(await countMessages(topic), 5);
      const [sent] = await db.query<RowDataPacket[]>(
        'SELECT CONVERT(task_key USING utf8mb4) AS k FROM sluice_dispatches WHERE ' +
          'pipeline = ? ORDER BY CAST(task_key AS UNSIGNED)',
        [name],
      );
      assert.deepEqual(
        sent.map((r) => Number(r.k)),
        [71, 72, 73, 74, 75],
      );
    },
  );

  it('refuses a write from another origin, and any write when read-only', async (t) => {
    const { base } = await dashboard(t);
    const foreign = await post(
      base,
      `/api/pipelines/${name}/requeue`,
      { filter: { errorClass: 'StageTimeoutError' }, dryRun: true },
      { origin: 'http://evil.example' },
    );
    assert.equal(foreign.status, 403);
    const noOrigin = await post(base, `/api/pipelines/${name}/requeue`, {
      filter: { errorClass: 'StageTimeoutError' },
      dryRun: true,
    });
    assert.equal(
      noOrigin.status,
      403,
      'a browser always sends Origin on a POST; a request without it is no page of ours',
    );
    const ro = await dashboard(t, { readOnly: true });
    const dry = await post(ro.base, `/api/pipelines/${name}/requeue`, { all: true, dryRun: true }, { origin: ro.base });
    const refused = await post(
      ro.base,
      `/api/pipelines/${name}/requeue`,
      { all: true, expect: { count: dry.body.matched, hash: dry.body.hash } },
      { origin: ro.base },
    );
    assert.equal(refused.status, 403);
    assert.match(refused.body.error ?? '', /read-only/);
  });

  it(
    'off loopback, refuses to start without a token and the allowed host ' +
      'names, then requires the token on every request',
    async (t) => {
      await assert.rejects(
        dashboard(t, { host: '0.0.0.0' }),
        (e: unknown) =>
          e instanceof ConfigError &&
          /dashboard\.token: .*token is required/.test(e.message) &&
          /dashboard\.allowedHosts/.test(e.message),
      );
      const { base } = await dashboard(t, { host: '0.0.0.0', token: 's3cret', allowedHosts: ['sluice.example'] });
      assert.equal((await get(base, '/api/pipelines')).status, 401);
      assert.equal((await get(base, '/')).status, 401);
      assert.equal((await get(base, '/assets/uplot.js')).status, 401);
      assert.equal((await get(base, '/api/pipelines', { authorization: 'Bearer wrong' })).status, 401);
      assert.equal(
        (await get(base, '/api/pipelines?token=s3cret')).status,
        401,
        'the token in an API URL would stay in logs: not accepted',
      );
      assert.equal((await get(base, '/api/pipelines', { authorization: 'Bearer s3cret' })).status, 200);
    },
  );
});

describe('the dashboard with a UUID key', () => {
  const uuid = '0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9';
  const hex = uuid.replaceAll('-', '');
  const pipeline = `${name}u`;

  async function uuidDashboard(t: TestContext): Promise<string> {
    await db.query(`CREATE TABLE IF NOT EXISTS \`${pipeline}\` (id UUID PRIMARY KEY, body VARCHAR(20) NOT NULL)`);
    await db.query(`INSERT IGNORE INTO \`${pipeline}\` VALUES (?, 'x'), (UUID(), 'y')`, [uuid]);
    await db.query(
      'INSERT IGNORE INTO sluice_dead_tasks (pipeline, task_key, stage, error_class, error_message, attempts, ' +
        "payload) VALUES (?, ?, 'ner', 'TypeError', 'failed', 3, '{}')",
      [pipeline, hex],
    );
    const config = validateConfig(
      mergeLayers(
        {
          database: { url },
          kafka: { brokers: BROKERS },
          pipelines: {
            [pipeline]: {
              topic: `${topic}-u`,
              source: { table: pipeline, key: 'id', columns: ['body'] },
              stages: [{ name: 'ner', run: async () => null }],
            },
          },
        },
        { dashboard: { port: await closedPort() } },
      ),
    );
    const d = await startDashboard({ config, log: silentLogger() });
    t.after(() => d.close());
    return d.url.replace(/\/$/, '');
  }

  it('finds a quarantined task by its UUID typed with or without dashes, and shows it with dashes', async (t) => {
    const base = await uuidDashboard(t);
    for (const typed of [uuid, hex, uuid.toUpperCase()]) {
      const found = (await get(base, `/api/pipelines/${pipeline}/quarantine?key=${typed}`)).body as {
        tasks: Array<{ key: string }>;
      };
      assert.deepEqual(
        found.tasks.map((x) => x.key),
        [uuid],
        typed,
      );
    }
    const task = (await get(base, `/api/pipelines/${pipeline}/tasks/${hex}`)).body as { key: string; state: string };
    assert.deepEqual({ key: task.key, state: task.state }, { key: uuid, state: 'quarantined' });
    assert.equal((await get(base, `/api/pipelines/${pipeline}/tasks/not-a-uuid`)).status, 400);
    const dry = await post(
      base,
      `/api/pipelines/${pipeline}/requeue`,
      { filter: { key: uuid }, dryRun: true },
      { origin: base },
    );
    assert.equal(dry.body.matched, 1, JSON.stringify(dry.body));
  });
});

describe('the dashboard recompute action', () => {
  const path = `/api/pipelines/${name}/recompute`;

  it('is refused when read-only, after its count', async (t) => {
    const { base } = await dashboard(t, { readOnly: true }, '3');
    const dry = await post(base, path, { filter: { fromStage: 'ner', key: '7' }, dryRun: true }, { origin: base });
    assert.equal(dry.body.matched, 1);
    const refused = await post(
      base,
      path,
      { filter: { fromStage: 'ner', key: '7' }, expect: { count: 1, hash: dry.body.hash } },
      { origin: base },
    );
    assert.equal(refused.status, 403);
  });

  it('counts the stale done tasks per stage and version first, then publishes exactly the confirmed set', async (t) => {
    const { base } = await dashboard(t, {}, '2');
    const status = (await get(base, `/api/pipelines/${name}`)).body as {
      versions: Array<{ stage: string; version: string; others: unknown[] }>;
    };
    assert.deepEqual(status.versions[0], {
      stage: 'ner',
      version: '2',
      others: [{ version: '1', count: 60 }],
      stale: 60,
    });
    const dry = await post(base, path, { dryRun: true }, { origin: base });
    const groups = (dry.body as unknown as { groups: unknown[] }).groups;
    assert.deepEqual([dry.body.matched, groups], [60, [{ stage: 'ner', from: '1', to: '2', tasks: 60 }]]);
    const stale = await post(base, path, { expect: { count: 59, hash: dry.body.hash } }, { origin: base });
    assert.equal(stale.status, 409, 'a count that is not the one shown is refused');
    const foreign = await post(
      base,
      path,
      { expect: { count: 60, hash: dry.body.hash } },
      { origin: 'http://x.example' },
    );
    assert.equal(foreign.status, 403);
    assert.equal((await post(base, path, { filter: { sql: 'id > 0' }, dryRun: true }, { origin: base })).status, 400);
    const done = await post(base, path, { expect: { count: 60, hash: dry.body.hash } }, { origin: base });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body.published, 60);
    const [rows] = await db.query<RowDataPacket[]>(
      "SELECT COUNT(*) AS n FROM sluice_recomputes WHERE pipeline = ? AND from_stage = 'ner'",
      [name],
    );
    assert.equal(Number(rows[0]?.n), 60);
    const again = await post(base, path, { dryRun: true }, { origin: base });
    assert.equal(again.body.matched, 0, 'published requests are in flight');
  });
});
