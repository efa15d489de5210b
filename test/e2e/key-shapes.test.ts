// Each key shape through the whole job into a user result table of the same shape, on the real MariaDB and Kafka:
// produce publishes every row once, the fetcher spools them, the worker writes each result row under its exact key
// (bytes, UUIDs, every part of a composite key), a rerun publishes nothing, and `inspect` finds a task by the key as
// a person types it (a UUID with dashes, a composite key as one argument per part).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { defaults, mergeLayers, type SluiceConfig } from '../../src/config/config.js';
import { validateConfig } from '../../src/config/validate.js';
import { silentLogger } from '../../src/core/logger.js';
import { migrate } from '../../src/db/migrate.js';
import { startFetcher } from '../../src/fetcher/fetcher.js';
import { produce } from '../../src/producer/producer.js';
import { spoolDepth } from '../../src/spool/depth.js';
import { spoolPaths } from '../../src/spool/layout.js';
import { startWorker } from '../../src/worker/worker.js';
import { runCli } from '../helpers/cli.js';
import { dbConfig, randomName, testDatabase } from '../helpers/db.js';
import { fileTeardown, tempDir } from '../helpers/fixtures.js';
import { BROKERS, ensureKafka } from '../helpers/kafka.js';
import { waitFor } from '../helpers/spool.js';

const log = silentLogger();
const file = fileTeardown();
let url: string;
let db: Connection;
let dir: string;

before(async () => {
  await ensureKafka();
  url = await testDatabase(file);
  await migrate(dbConfig(url), log);
  db = await mysql.createConnection(url);
  dir = tempDir(file, 'sluice-shapes-');
});
after(async () => {
  await db?.end();
});

interface Shape {
  name: string;
  source: string;
  rows: unknown[][];
  key: string | string[];
  result: string;
  resultKey: string | string[];
  /** One row's key as a person types it for `inspect`, and how inspect shows it. */
  typed: string[];
  shown: string;
}

const uuid = '123e4567-e89b-12d3-a456-426655440000';
const shapes: Shape[] = [
  {
    name: 'binary16',
    source: 'id BINARY(16) PRIMARY KEY, body VARCHAR(20) NOT NULL',
    rows: [
      [Buffer.from(uuid.replace(/-/g, ''), 'hex'), 'one'],
      [Buffer.alloc(16, 0), 'zeros'],
      [Buffer.alloc(16, 0xff), 'ones'],
      [Buffer.from([0x41]), 'padded'],
    ],
    key: 'id',
    result: 'rid BINARY(16) PRIMARY KEY, body TEXT',
    resultKey: 'rid',
    typed: [uuid.toUpperCase()],
    shown: uuid,
  },
  {
    name: 'uuid',
    source: 'id UUID PRIMARY KEY, body VARCHAR(20) NOT NULL',
    rows: [
      [uuid, 'one'],
      ['00000000-0001-1000-8000-000000000000', 'two'],
      ['10000000-0000-1000-8000-000000000000', 'three'],
    ],
    key: 'id',
    result: 'rid UUID PRIMARY KEY, body TEXT',
    resultKey: 'rid',
    typed: [uuid.replace(/-/g, '')],
    shown: uuid,
  },
  {
    name: 'composite',
    source:
      'tenant_id INT NOT NULL, id VARCHAR(20) COLLATE utf8mb4_general_ci NOT NULL, body VARCHAR(20) NOT NULL, ' +
      'PRIMARY KEY (tenant_id, id)',
    rows: [
      [1, 'a', 'one'],
      [1, 'B', 'two'],
      [2, 'a', 'three'],
      [2, 'x,y\\z', 'four'],
    ],
    key: ['tenant_id', 'id'],
    result: 'tid INT NOT NULL, rid VARCHAR(20) COLLATE utf8mb4_general_ci NOT NULL, body TEXT, PRIMARY KEY (tid, rid)',
    resultKey: ['tid', 'rid'],
    typed: ['2', 'x,y\\z'],
    shown: '2,x\\,y\\\\z',
  },
];

function config(s: Shape, name: string, source: string, result: string): SluiceConfig {
  return validateConfig(
    mergeLayers(structuredClone(defaults), {
      database: { url },
      kafka: { brokers: BROKERS },
      producer: { pageSize: 2, flushMs: 5 },
      worker: { pollMs: 20 },
      spool: { dir: join(dir, name) },
      pipelines: {
        [name]: {
          topic: randomName(`sluice-${s.name}`),
          partitions: 2,
          source: { table: source, key: s.key, columns: ['body'] },
          results: { table: result, key: s.resultKey, columns: ['body'], row: (o: { body: string }) => o },
          stages: [{ name: 'upper', run: async (p: { body: string }) => ({ body: p.body.toUpperCase() }) }],
        },
      },
    }),
  );
}

describe('every key shape, end to end into a result table of the same shape', () => {
  for (const s of shapes) {
    it(`${s.name}: each row done once under its exact key, a rerun publishes 0, inspect finds it`, async () => {
      const source = randomName(`src_${s.name}`);
      const result = randomName(`res_${s.name}`);
      await db.query(`CREATE TABLE ${source} (${s.source})`);
      await db.query(`INSERT INTO ${source} VALUES ?`, [s.rows]);
      await db.query(`CREATE TABLE ${result} (${s.result})`);
      const name = randomName(s.name);
      const c = config(s, name, source, result);
      const n = s.rows.length;
      assert.equal((await produce({ config: c, pipeline: name, log })).published, n);
      const f = await startFetcher({ config: c, pipeline: name, log });
      try {
        await waitFor(`${n} spooled`, async () => (await spoolDepth(spoolPaths(c.spool.dir, name))).items >= n, 60_000);
      } finally {
        await f.stop();
      }
      const stats = await (await startWorker({ config: c, pipeline: name, log, exitWhenIdle: true })).done;
      assert.deepEqual([stats.done, stats.quarantined], [n, 0]);
      // Every source row has its result row, matched on every key column exactly (the join is the user's own).
      const keys = (Array.isArray(s.key) ? s.key : [s.key]).map((k, i) => [k, [s.resultKey].flat()[i]!] as const);
      const on = keys.map(([sk, rk]) => `BINARY r.${rk} = BINARY s.${sk}`).join(' AND ');
      const [[joined]] = await db.query<RowDataPacket[]>(
        `SELECT COUNT(*) AS n, SUM(r.body = UPPER(s.body)) AS same FROM ${source} s JOIN ${result} r ON ${on}`,
      );
      assert.deepEqual([Number(joined?.n), Number(joined?.same)], [n, n]);
      const [[all]] = await db.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${result}`);
      assert.equal(Number(all?.n), n, 'no row under another key');
      assert.equal((await produce({ config: c, pipeline: name, log })).published, 0, 'a rerun publishes nothing');

      const cfg = join(dir, `${s.name}.config.mjs`);
      const src = JSON.stringify({ table: source, key: s.key, columns: ['body'] });
      const res = JSON.stringify({ table: result, key: s.resultKey, columns: ['body'] });
      writeFileSync(
        cfg,
        `export default { pipelines: { ${name}: { source: ${src}, ` +
          `results: { ...${res}, row: (o) => o }, stages: [{ name: 'upper', run: (p) => p }] } } };\n`,
      );
      const r = await runCli(['inspect', '--pipeline', name, '--config', cfg, ...s.typed], {
        env: { DATABASE_URL: url, SLUICE_SPOOL_DIR: join(dir, 'spool-cli') },
      });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.startsWith(`key ${JSON.stringify(s.shown)}: done`), r.stdout);
    });
  }
});

describe('a composite key whose text is over the 2,048-byte limit', () => {
  it('is skipped and listed like any over-long key (exit 5); the other rows are published', async () => {
    const source = randomName('src_long');
    await db.query(
      `CREATE TABLE ${source} (a VARCHAR(1100) CHARACTER SET latin1 NOT NULL, ` +
        'b VARCHAR(1100) CHARACTER SET latin1 NOT NULL, body VARCHAR(20) NOT NULL, PRIMARY KEY (a, b))',
    );
    await db.query(`INSERT INTO ${source} VALUES (?), (?)`, [
      ['x'.repeat(1100), 'y'.repeat(1100), 'long'],
      ['short', 'key', 'ok'],
    ]);
    const cfg = join(dir, 'long.config.mjs');
    const name = randomName('long');
    writeFileSync(
      cfg,
      `export default { pipelines: { ${name}: { topic: ${JSON.stringify(randomName('sluice-long'))}, ` +
        `source: { table: ${JSON.stringify(source)}, key: ['a', 'b'], columns: ['body'] }, ` +
        `stages: [{ name: 's', run: (p) => p }] } } };\n`,
    );
    const r = await runCli(['produce', '--pipeline', name, '--config', cfg, '--brokers', BROKERS.join(',')], {
      env: { DATABASE_URL: url },
    });
    assert.equal(r.code, 5, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /published +1 /);
    assert.match(r.stdout, /key is 2201 bytes of UTF-8; the most sluice stores is 2048/);
  });
});
