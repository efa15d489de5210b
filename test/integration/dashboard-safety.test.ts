// The dashboard as an attacker and a team would meet it: DNS rebinding (a foreign Host) is refused before any
// handler, the token becomes a session cookie the page's assets and writes work with, every malformed input is
// a 400 naming the field (never "match everything"), a requeue acts only on the set the user confirmed, and
// every answer carries the security headers.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { before, describe, it, type TestContext } from 'node:test';
import { pino } from 'pino';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { mergeLayers, type SluiceConfigInput } from '../../src/config/config.js';
import { validateConfig } from '../../src/config/validate.js';
import { ConfigError } from '../../src/core/errors.js';
import { silentLogger, type Logger } from '../../src/core/logger.js';
import { startDashboard } from '../../src/dashboard/server.js';
import { randomName } from '../helpers/db.js';
import { fileDatabase, tempDir } from '../helpers/fixtures.js';
import { BROKERS, closedPort, ensureKafka } from '../helpers/kafka.js';

let url: string;
let db: Connection;
const name = randomName('dsafe');
const topic = randomName('sluice-dsafe');
before(() => ensureKafka());
fileDatabase({ seed: ({ db }) => seed(db) }, (d) => ({ url, db } = d));

async function seed(db: Connection): Promise<void> {
  await db.query(`CREATE TABLE \`${name}\` (id INT PRIMARY KEY, body VARCHAR(20) NOT NULL)`);
  await db.query(`INSERT INTO \`${name}\` SELECT seq, 'x' FROM seq_1_to_40`);
  await db.query(
    `INSERT INTO sluice_dead_tasks (pipeline, task_key, stage, error_class, ` +
      `error_message, attempts, payload) SELECT ?, CAST(seq AS CHAR), 'ner', ` +
      `IF(seq <= 10, 'StageTimeoutError', 'TypeError'), 'failed', 3, '{}' FROM ` +
      `seq_1_to_15`,
    [name],
  );
}

async function dashboard(
  t: TestContext,
  layer: SluiceConfigInput['dashboard'] = {},
  log: Logger = silentLogger(),
  poolSize = 10,
): Promise<{ base: string; port: number }> {
  const port = await closedPort();
  const config = validateConfig(
    mergeLayers(
      {
        database: { url, poolSize },
        kafka: { brokers: BROKERS },
        pipelines: {
          [name]: {
            topic,
            partitions: 1,
            source: { table: name, key: 'id', columns: ['body'] },
            stages: [{ name: 'ner', run: async () => null }],
          },
        },
      },
      { dashboard: { port, ...layer } },
    ),
  );
  const d = await startDashboard({ config, log });
  t.after(() => d.close());
  return { base: `http://127.0.0.1:${port}`, port };
}

/** The fields these tests read from a JSON answer (a page or an asset leaves them undefined). */
interface AnswerBody {
  error: string;
  matched: number;
  hash: string;
  requeued: number;
  published: number;
  connections: { poolSize: number; heldHere: number; server: number };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: AnswerBody;
}

/** A request with whatever headers a caller chooses, Host included (fetch would not send a foreign Host). */
function raw(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, headers: { host: `127.0.0.1:${port}`, ...headers } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += String(c)));
        res.on('end', () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON: the page or an asset
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed as AnswerBody });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const requeuePath = `/api/pipelines/${name}/requeue`;
const json = (port: number, body: string, extra: Record<string, string> = {}): Promise<Answer> =>
  raw(
    port,
    'POST',
    requeuePath,
    { 'content-type': 'application/json', origin: `http://127.0.0.1:${port}`, ...extra },
    body,
  );

async function quarantinedCount(): Promise<number> {
  const [[row]] = await db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sluice_dead_tasks WHERE pipeline = ?', [
    name,
  ]);
  return Number(row?.n);
}

describe('the dashboard refuses what a page of another site can send', () => {
  it(
    'answers 421 to a request naming a foreign Host (DNS rebinding), reads ' + 'and writes alike, before any handler',
    async (t) => {
      const { port } = await dashboard(t);
      const evil = { host: `evil.example:${port}`, origin: `http://evil.example:${port}` };
      assert.equal((await raw(port, 'GET', '/api/pipelines', evil)).status, 421);
      assert.equal((await raw(port, 'GET', '/', evil)).status, 421);
      const write = await json(port, JSON.stringify({ all: true, dryRun: true }), evil);
      assert.equal(write.status, 421);
      assert.match(write.body.error, /allowedHosts/);
      assert.equal(
        (await raw(port, 'GET', '/api/pipelines', { host: `localhost:${port}` })).status,
        200,
        'a loopback name is what a browser on this machine sends',
      );
      assert.equal(
        (await raw(port, 'GET', '/api/pipelines', { 'x-forwarded-host': 'evil.example' })).status,
        200,
        'X-Forwarded-Host counts only with trustProxy',
      );
    },
  );

  it(
    'serves the host names in dashboard.allowedHosts, and with trustProxy ' + 'takes the host from X-Forwarded-Host',
    async (t) => {
      const { port } = await dashboard(t, { allowedHosts: ['sluice.example'], trustProxy: true });
      assert.equal((await raw(port, 'GET', '/api/pipelines', { host: 'sluice.example' })).status, 200);
      assert.equal((await raw(port, 'GET', '/api/pipelines', { 'x-forwarded-host': 'evil.example' })).status, 421);
      const proxied = await json(port, JSON.stringify({ all: true, dryRun: true }), {
        host: 'sluice.example',
        origin: 'https://sluice.example',
      });
      assert.equal(proxied.status, 200, 'behind a TLS proxy the page is https://<allowed host>');
    },
  );

  it('refuses a write whose Origin is not one of its hosts (CSRF), even with a valid Host', async (t) => {
    const { port } = await dashboard(t);
    assert.equal(
      (await json(port, JSON.stringify({ all: true, dryRun: true }), { origin: 'http://evil.example' })).status,
      403,
    );
    assert.equal((await json(port, JSON.stringify({ all: true, dryRun: true }), { origin: 'null' })).status, 403);
  });
});

describe('token mode', () => {
  it(
    'exchanges /?token= for an HttpOnly, SameSite=Strict session cookie and a ' +
      'redirect without the token; assets, API and writes take the cookie',
    async (t) => {
      const { port } = await dashboard(t, { host: '0.0.0.0', token: 's3cret', allowedHosts: ['sluice.example'] });
      assert.equal((await raw(port, 'GET', '/?token=wrong')).status, 401);
      const login = await raw(port, 'GET', '/?token=s3cret');
      assert.equal(login.status, 303);
      assert.equal(login.headers.location, '/');
      const setCookie = String(login.headers['set-cookie']);
      assert.match(setCookie, /HttpOnly/);
      assert.match(setCookie, /SameSite=Strict/);
      const cookie = setCookie.split(';')[0]!;
      assert.doesNotMatch(cookie, /s3cret/, 'the cookie is a session, not the token');
      for (const path of [
        '/',
        '/assets/uplot.js',
        '/assets/uplot.css',
        '/assets/page.js',
        '/assets/page.css',
        '/api/pipelines',
      ]) {
        assert.equal((await raw(port, 'GET', path, { cookie })).status, 200, path);
      }
      assert.equal((await raw(port, 'GET', '/api/pipelines', { cookie: 'sluice_session=forged' })).status, 401);
      assert.equal((await json(port, JSON.stringify({ all: true, dryRun: true }), { cookie })).status, 200);
      assert.equal(
        (await json(port, JSON.stringify({ all: true, dryRun: true }), { cookie, origin: 'http://evil.example' }))
          .status,
        403,
      );
      assert.equal(
        (
          await raw(
            port,
            'POST',
            requeuePath,
            { authorization: 'Bearer s3cret', 'content-type': 'application/json' },
            JSON.stringify({ all: true, dryRun: true }),
          )
        ).status,
        200,
        'a script with the token needs no Origin',
      );
    },
  );

  it('reads the token from dashboard.tokenFile, and refuses both a token and a file', async (t) => {
    const file = join(tempDir(t, 'sluice-token-'), 'token');
    writeFileSync(file, 'from-a-file\n');
    const { port } = await dashboard(t, { tokenFile: file });
    assert.equal((await raw(port, 'GET', '/api/pipelines')).status, 401);
    assert.equal((await raw(port, 'GET', '/api/pipelines', { authorization: 'Bearer from-a-file' })).status, 200);
    await assert.rejects(
      dashboard(t, { tokenFile: file, token: 'x' }),
      (e: unknown) => e instanceof ConfigError && /not both/.test(e.message),
    );
  });
});

describe('every input is validated', () => {
  it('answers 400 naming the field to each malformed requeue, and requeues nothing', async (t) => {
    const { port } = await dashboard(t);
    const before = await quarantinedCount();
    const cases: Array<[string, RegExp]> = [
      ['null', /body: the body must be a JSON object/],
      ['', /body: the body must be a JSON object/],
      ['[]', /body: the body must be a JSON object/],
      ['{"filter":"x"}', /body\.filter: must be an object/],
      ['{"filter":{"key":5}}', /body\.filter\.key/],
      ['{"filter":{}}', /body\.filter: give at least one of/],
      ['{}', /body\.filter: give at least one of/],
      ['{"all":true,"dryRun":"yes"}', /body\.dryRun: must be true or false/],
      ['{"all":false}', /body\.all: must be true/],
      ['{"all":true,"filter":{"stage":"ner"}}', /body\.all: a filter and/],
      ['{"all":true,"everything":1}', /body: unknown field\(s\) everything/],
      ['{"filter":{"since":"Dec 25"},"dryRun":true}', /body\.filter\.since: must be an ISO-8601 time/],
      ['{"all":true}', /body\.expect: a requeue carries/],
      ['not json', /must be JSON/],
    ];
    for (const [body, error] of cases) {
      const r = await json(port, body);
      assert.equal(r.status, 400, `${body}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error, error, body);
    }
    assert.equal(await quarantinedCount(), before);
  });

  it(
    'refuses with 409 and the new figures a requeue whose filter now matches ' + 'another set than the one confirmed',
    async (t) => {
      const { port } = await dashboard(t);
      const dry = await json(port, JSON.stringify({ filter: { errorClass: 'TypeError' }, dryRun: true }));
      assert.equal(dry.body.matched, 5);
      await db.query(
        'INSERT INTO sluice_dead_tasks (pipeline, task_key, stage, error_class, ' +
          "error_message, attempts) VALUES (?, '39', 'ner', 'TypeError', 'late', 1)",
        [name],
      );
      t.after(() => db.query("DELETE FROM sluice_dead_tasks WHERE pipeline = ? AND task_key = '39'", [name]));
      const stale = await json(
        port,
        JSON.stringify({ filter: { errorClass: 'TypeError' }, expect: { count: 5, hash: dry.body.hash } }),
      );
      assert.equal(stale.status, 409);
      assert.equal(stale.body.matched, 6);
      assert.notEqual(stale.body.hash, dry.body.hash);
      const [[left]] = await db.query<RowDataPacket[]>(
        "SELECT COUNT(*) AS n FROM sluice_dead_tasks WHERE pipeline = ? AND error_class = 'TypeError'",
        [name],
      );
      assert.equal(Number(left?.n), 6, 'nothing requeued');
    },
  );

  it('answers 400 to malformed paths, dates and numbers, with no stack trace in the log', async (t) => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
    const { port } = await dashboard(t, {}, log);
    for (const path of [
      '/api/pipelines/%E0%A4%A',
      `/api/pipelines/${name}/quarantine?since=1`,
      `/api/pipelines/${name}/quarantine?until=Dec%2025`,
      `/api/pipelines/${name}/quarantine?limit=1e3`,
      `/api/pipelines/${name}/quarantine?colour=red`,
      `/api/pipelines/${name}/stages?minutes=-1`,
      `/api/pipelines/${name}?exact=yes`,
    ]) {
      const r = await raw(port, 'GET', path);
      assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
      assert.equal(typeof r.body.error, 'string');
    }
    assert.equal((await raw(port, 'GET', `/api/pipelines/${name}/quarantine?since=2026-11-26T08:00:00Z`)).status, 200);
    assert.deepEqual(
      lines.filter((l) => /"level":50|stack/.test(l)),
      [],
      'no error records, no stacks',
    );
  });
});

describe('headers', () => {
  it(
    'sends a Content-Security-Policy without inline script or style, no ' +
      'framing, nosniff and no referrer, on every answer; the page has no ' +
      'inline script or style',
    async (t) => {
      const { port } = await dashboard(t);
      for (const path of ['/', '/assets/page.js', '/api/pipelines', '/nope']) {
        const r = await raw(port, 'GET', path);
        const csp = String(r.headers['content-security-policy']);
        assert.match(csp, /script-src 'self'/, path);
        assert.match(csp, /style-src 'self'/, path);
        assert.match(csp, /frame-ancestors 'none'/, path);
        assert.doesNotMatch(csp, /unsafe-inline/, path);
        assert.equal(r.headers['x-content-type-options'], 'nosniff', path);
        assert.equal(r.headers['referrer-policy'], 'no-referrer', path);
      }
      const html = (await raw(port, 'GET', '/')).body as unknown as string;
      assert.doesNotMatch(html, /<script>|<script(?![^>]*\bsrc=)[^>]*>|<style|style=/, 'no inline script or style');
      assert.match(html, /<script src="\/assets\/page\.js"><\/script>/);
    },
  );
});

describe('the database connections it holds', () => {
  it(
    'serves 200 parallel requests within database.poolSize connections ' +
      '(counted on the server), answering each 200 or 503',
    async (t) => {
      const { port } = await dashboard(t, {}, silentLogger(), 3);
      const [[me]] = await db.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id, DATABASE() AS d');
      let most = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const [rows] = await db.query<RowDataPacket[]>(
            'SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> ?',
            [me?.d, me?.id],
          );
          most = Math.max(most, Number(rows[0]?.n));
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      const answers = await Promise.all(Array.from({ length: 200 }, () => raw(port, 'GET', `/api/pipelines/${name}`)));
      sampling = false;
      await sampler;
      const statuses = [...new Set(answers.map((a) => a.status))].sort();
      assert.ok(
        statuses.every((s) => s === 200 || s === 503),
        `statuses ${statuses.join(', ')}`,
      );
      assert.ok(
        answers.some((a) => a.status === 200),
        'most are served',
      );
      assert.ok(most >= 1 && most <= 3, `at most database.poolSize (3) connections at once, saw ${most}`);
    },
  );

  it(
    'publishes a requeue through its own pool and Kafka client: not one ' +
      'database connection more, and says what it holds',
    async (t) => {
      const { port } = await dashboard(t, {}, silentLogger(), 1);
      const status = await raw(port, 'GET', `/api/pipelines/${name}`);
      assert.equal(status.status, 200);
      assert.deepEqual(
        { poolSize: status.body.connections.poolSize, heldHere: status.body.connections.heldHere },
        { poolSize: 1, heldHere: 1 },
      );
      assert.ok(status.body.connections.server >= 2, 'the server sees the dashboard and this test');
      const connectionsMade = async (): Promise<number> =>
        Number((await db.query<RowDataPacket[]>("SHOW GLOBAL STATUS LIKE 'Connections'"))[0][0]?.Value);
      const before = await connectionsMade();
      const dry = await json(port, JSON.stringify({ filter: { key: '15' }, dryRun: true }));
      assert.equal(dry.body.matched, 1);
      const done = await json(
        port,
        JSON.stringify({ filter: { key: '15' }, expect: { count: 1, hash: dry.body.hash } }),
      );
      assert.equal(done.status, 200, JSON.stringify(done.body));
      assert.deepEqual({ requeued: done.body.requeued, published: done.body.published }, { requeued: 1, published: 1 });
      // The server's own counter of connections ever made: a requeue that opened a pool of its own adds to it.
      assert.equal((await connectionsMade()) - before, 0, 'no new connection to the database for the requeue');
    },
  );
});
