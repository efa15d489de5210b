// A result write that stored no row for its key is never a success. A result key column that can merge
// or cut source keys is refused at start (produce, work, doctor: one line, both columns, the ALTER TABLE
// that fixes it, exit 2) unless results.mergeKeys accepts merged keys; the worker reads back every batch
// it writes and quarantines a task whose row is not there for its exact key. Real MariaDB and Kafka.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { defaults, mergeLayers, type SluiceConfig } from '../../src/config/config.js';
import { validateConfig } from '../../src/config/validate.js';
import { silentLogger } from '../../src/core/logger.js';
import { estimateCounts } from '../../src/ledger/counts.js';
import { migrate } from '../../src/db/migrate.js';
import { checkPipelineTables } from '../../src/user-tables/pipeline-tables.js';
import { openPool } from '../../src/db/pool.js';
import { startFetcher } from '../../src/fetcher/fetcher.js';
import { produce } from '../../src/producer/producer.js';
import { spoolDepth } from '../../src/spool/depth.js';
import { spoolPaths } from '../../src/spool/layout.js';
import { SpoolWriter } from '../../src/spool/writer.js';
import { collectStatus } from '../../src/status/collect.js';
import { renderStatus } from '../../src/status/render.js';
import { startWorker } from '../../src/worker/worker.js';
import { runCli } from '../helpers/cli.js';
import { dbConfig, randomName, testDatabase } from '../helpers/db.js';
import { fileTeardown, tempDir } from '../helpers/fixtures.js';
import { BROKERS, ensureKafka } from '../helpers/kafka.js';
import { waitFor } from '../helpers/spool.js';
import { seq } from '../helpers/regex.js';

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
  dir = tempDir(file, 'sluice-keys-');
  // Four keys under a byte-exact collation; one key under MariaDB's default case- and accent-insensitive one.
  await db.query(
    'CREATE TABLE docs (id VARCHAR(40) CHARACTER SET utf8mb4 COLLATE ' +
      'utf8mb4_bin PRIMARY KEY, body VARCHAR(20) NOT NULL)',
  );
  await db.query(
    "INSERT INTO docs VALUES ('abc', 'one'), ('ABC', 'two'), ('Abc', 'three'), ('ábc', 'four'), ('xyz', 'five')",
  );
});
after(async () => {
  await db?.end();
});

const row = (o: { body: string }) => ({ body: o.body });

function config(
  name: string,
  results: Record<string, unknown>,
  source: Record<string, unknown> = { table: 'docs', key: 'id', columns: ['body'] },
): SluiceConfig {
  return validateConfig(
    mergeLayers(structuredClone(defaults), {
      database: { url },
      kafka: { brokers: BROKERS },
      producer: { pageSize: 100, flushMs: 5 },
      worker: { pollMs: 20 },
      spool: { dir: join(dir, name) },
      pipelines: {
        [name]: {
          topic: randomName('sluice-keys'),
          partitions: 1,
          source,
          results: { columns: ['body'], row, ...results },
          stages: [{ name: 'copy', run: async (p: unknown) => p }],
        },
      },
    }),
  );
}

/** A config file for the CLI: the pipeline `p` over `source`, into `results`. */
function configFile(source: string, results: string, extra = ''): string {
  const cfg = join(dir, `${randomName('cfg')}.config.mjs`);
  writeFileSync(
    cfg,
    `export default { pipelines: { p: { source: ${source}, ` +
      `results: { ${results}, columns: ['body'], row: (o) => o${extra} }, ` +
      `stages: [{ name: 's', run: (p) => p }] } } };\n`,
  );
  return cfg;
}

async function refusals(cfg: string): Promise<string[]> {
  const lines: string[] = [];
  for (const command of ['produce', 'work', 'doctor']) {
    const r = await runCli([command, '--pipeline', 'p', '--config', cfg, '--brokers', BROKERS.join(',')], {
      env: { DATABASE_URL: url, SLUICE_SPOOL_DIR: join(dir, 'spool-cli') },
    });
    assert.equal(r.code, 2, `${command}: ${r.stdout}${r.stderr}`);
    const err = r.stderr.trim();
    assert.equal(err.split('\n').length, 1, `${command}: one line: ${err}`);
    assert.doesNotMatch(err, /\n\s+at /, 'no stack trace');
    lines.push(err);
  }
  return lines;
}

describe("the user's result key: a result write that stored nothing is never a success", () => {
  it(
    'a result key that can merge source keys is refused at start by produce, ' +
      'work and doctor, with the ALTER TABLE that fixes it',
    async () => {
      await db.query(
        'CREATE TABLE res_ci (id VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci PRIMARY KEY, body TEXT)',
      );
      const cfg = configFile("{ table: 'docs', key: 'id', columns: ['body'] }", "table: 'res_ci', key: 'id'");
      const [produceLine, workLine, doctorLine] = await refusals(cfg);
      const expected = seq(
        /^sluice: pipelines\.p\.results\.key: 'res_ci\.id' \(varchar\(40\) utf8mb4_general_ci\) /,
        /can merge keys of 'docs\.id' \(varchar\(40\) utf8mb4_bin\): .*/,
        /ALTER TABLE res_ci MODIFY id varchar\(40\) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL /,
        /\(or set results\.mergeKeys: true to accept merged keys\)$/,
      );
      for (const line of [produceLine!, workLine!, doctorLine!]) assert.match(line, expected);
      // doctor also counts what collides today (a GROUP BY over the source) and shows a pair.
      assert.match(doctorLine!, /4 source key\(s\) collide today, e.g\. "ABC" and "ábc"/);
      const [[d]] = await db.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM sluice_dispatches WHERE pipeline = 'p'");
      assert.equal(Number(d?.n), 0, 'nothing published');

      // The statement in the hint is the fix.
      const alter = /(ALTER TABLE .* NOT NULL) \(or set/.exec(produceLine!)![1]!;
      await db.query(alter);
      const ok = await runCli(
        ['produce', '--pipeline', 'p', '--config', cfg, '--dry-run', '--brokers', BROKERS.join(',')],
        { env: { DATABASE_URL: url } },
      );
      assert.equal(ok.code, 0, ok.stderr);
    },
  );

  it(
    'a result key that can cut source keys is refused the same way: shorter, ' +
      'CHAR, a narrower character set, a smaller integer range',
    async () => {
      await db.query(
        'CREATE TABLE res_short (id VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY, body TEXT)',
      );
      await db.query(
        'CREATE TABLE res_char (id CHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY, body TEXT)',
      );
      await db.query(
        'CREATE TABLE res_latin (id VARCHAR(40) CHARACTER SET latin1 COLLATE latin1_bin PRIMARY KEY, body TEXT)',
      );
      await db.query('CREATE TABLE big_docs (id BIGINT UNSIGNED PRIMARY KEY, body TEXT)');
      await db.query('CREATE TABLE res_int (id INT PRIMARY KEY, body TEXT)');
      const text = "{ table: 'docs', key: 'id', columns: ['body'] }";
      const cases: Array<[string, string, RegExp]> = [
        [
          text,
          "table: 'res_short', key: 'id'",
          seq(
            /'res_short\.id' \(varchar\(20\) utf8mb4_bin\) can cut keys of 'docs\.id' /,
            /.*holds 20 characters, the source key up to 40.*MODIFY id varchar\(40\)/,
          ),
        ],
        [
          text,
          "table: 'res_char', key: 'id'",
          /'res_char\.id' \(char\(40\) utf8mb4_bin\) can cut keys .*drops the trailing spaces/,
        ],
        [
          text,
          "table: 'res_latin', key: 'id'",
          /'res_latin\.id' \(varchar\(40\) latin1_bin\) can cut keys .*character set latin1/,
        ],
        [
          "{ table: 'big_docs', key: 'id', columns: ['body'] }",
          "table: 'res_int', key: 'id'",
          seq(
            /'res_int\.id' \(int\(11\)\) can cut keys of 'big_docs\.id' \(bigint\(20\) unsigned\)/,
            /.*ALTER TABLE res_int MODIFY id bigint\(20\) unsigned NOT NULL/,
          ),
        ],
      ];
      for (const [source, results, message] of cases) {
        for (const line of await refusals(configFile(source, results))) {
          assert.match(line, message);
          assert.doesNotMatch(line, /mergeKeys/, 'a cut is never accepted');
        }
      }
      // Not even with results.mergeKeys: a cut key can land on another key's row and overwrite its result.
      for (const line of await refusals(configFile(text, "table: 'res_short', key: 'id', mergeKeys: true")))
        assert.match(line, /can cut keys/);
    },
  );

  it(
    'with results.mergeKeys the merged row is the result of every key it ' +
      'merges: nothing stays in flight, a rerun publishes nothing, status shows ' +
      'the sharing',
    async () => {
      await db.query(
        'CREATE TABLE res_merged (id VARCHAR(40) CHARACTER SET utf8mb4 COLLATE ' +
          'utf8mb4_general_ci PRIMARY KEY, body TEXT)',
      );
      const name = randomName('m');
      const c = config(name, { table: 'res_merged', key: 'id', mergeKeys: true });
      assert.equal((await produce({ config: c, pipeline: name, log })).published, 5);
      const f = await startFetcher({ config: c, pipeline: name, log });
      try {
        await waitFor('5 spooled', async () => (await spoolDepth(spoolPaths(c.spool.dir, name))).items >= 5, 60_000);
      } finally {
        await f.stop();
      }
      const stats = await (await startWorker({ config: c, pipeline: name, log, exitWhenIdle: true })).done;
      assert.deepEqual([stats.done + stats.skipped, stats.quarantined], [5, 0]);
      const [rows] = await db.query<RowDataPacket[]>('SELECT id FROM res_merged ORDER BY id');
      assert.equal(rows.length, 2, "one row for the four merged keys, one for 'xyz'");
      assert.equal((await produce({ config: c, pipeline: name, log })).published, 0, 'a rerun publishes nothing');
      // A fresh snapshot (count-snapshots.ts, what status reads on a large source), then the exact count.
      const pool = await openPool(dbConfig(url), { poolSize: 1 });
      try {
        const src = await checkPipelineTables(pool, c.pipelines[name]!);
        const estimate = await estimateCounts(
          pool,
          src,
          { pipeline: name, staleAfterMs: 3_600_000, includeQuarantined: false },
          ['copy'],
          { refresh: true },
        );
        assert.deepEqual(
          [estimate.exact, estimate.done, estimate.shared],
          [false, 5, 3],
          'the estimate counts the merged keys done too',
        );
      } finally {
        await pool.end();
      }
      const s = await collectStatus(c, name, log, { exact: true });
      assert.deepEqual([s.done, s.inFlight, s.pending, s.quarantined, s.shared, s.orphans], [5, 0, 0, 0, 3, 0]);
      const lines: string[] = [];
      renderStatus(s, (l) => lines.push(l));
      assert.ok(
        lines.includes(
          '  3 done source row(s) have no result row of their own: they share one with another key (results.mergeKeys)',
        ),
        lines.join('\n'),
      );
    },
  );

  it(
    'the worker reads back each batch it writes: a task whose row is not ' +
      'there for its exact key is quarantined with the reason, never left in flight',
    async () => {
      // The column fits; a trigger of the user's changes the key on its way in (as a normalising trigger would).
      await db.query(
        'CREATE TABLE res_trig (id VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY, body TEXT)',
      );
      await db.query('CREATE TRIGGER res_trig_upper BEFORE INSERT ON res_trig FOR EACH ROW SET NEW.id = UPPER(NEW.id)');
      const name = randomName('t');
      const c = config(name, { table: 'res_trig', key: 'id' });
      const writer = new SpoolWriter(spoolPaths(c.spool.dir, name), 10);
      await writer.open();
      const task = (key: string, body: string) => ({
        v: 1 as const,
        pipeline: name,
        key,
        payload: { body },
        attempt: 1,
        runId: 'r',
        producedAt: '',
      });
      await writer.writeItems(
        0,
        [task('ABC', 'two'), task('xyz', 'five')].map((t, i) => ({ partition: 0, offset: String(i), task: t })),
      );
      const stats = await (await startWorker({ config: c, pipeline: name, log, exitWhenIdle: true })).done;
      assert.deepEqual([stats.done, stats.quarantined], [1, 1]);
      const [dead] = await db.query<RowDataPacket[]>(
        'SELECT CAST(task_key AS CHAR) AS k, error_message AS m FROM sluice_dead_tasks WHERE pipeline = ?',
        [name],
      );
      assert.equal(dead.length, 1);
      assert.equal(dead[0]!.k, 'xyz');
      assert.match(String(dead[0]!.m), /result table 'res_trig' has no row for key "xyz" after its write/);
      const s = await collectStatus(c, name, log, { exact: true });
      assert.deepEqual(
        [s.done, s.quarantined, s.inFlight],
        [1, 1, 0],
        "'ABC' done, 'xyz' quarantined: nothing in flight",
      );
    },
  );
});
