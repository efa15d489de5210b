// A pipeline writing into the user's own result table: "done" means a row there (an earlier offline run's
// rows included), the producer publishes only the rest, workers upsert one row per key, and every command
// agrees. Real MariaDB and Kafka.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { defaults, mergeLayers, type SluiceConfig } from '../../src/config/config.js';
import { validateConfig } from '../../src/config/validate.js';
import { silentLogger } from '../../src/core/logger.js';
import { LedgerWriter } from '../../src/ledger/ledger-writer.js';
import { migrate } from '../../src/db/migrate.js';
import { checkPipelineTables } from '../../src/user-tables/pipeline-tables.js';
import { openPool } from '../../src/db/pool.js';
import { startFetcher } from '../../src/fetcher/fetcher.js';
import { produce } from '../../src/producer/producer.js';
import { spoolDepth } from '../../src/spool/depth.js';
import { spoolPaths } from '../../src/spool/layout.js';
import { SpoolWriter } from '../../src/spool/writer.js';
import { startWorker } from '../../src/worker/worker.js';
import { runCli } from '../helpers/cli.js';
import { dbConfig, randomName, testDatabase } from '../helpers/db.js';
import { fileTeardown } from '../helpers/fixtures.js';
import { BROKERS, ensureKafka } from '../helpers/kafka.js';
import { waitFor } from '../helpers/spool.js';
import { seq } from '../helpers/regex.js';

const log = silentLogger();
let url: string;
let db: Connection;
let dir: string;

before(async () => {
  await ensureKafka();
  url = await testDatabase(file);
  await migrate(dbConfig(url), log);
  db = await mysql.createConnection(url);
  dir = mkdtempSync(join(tmpdir(), 'sluice-results-'));
});
after(async () => {
  await db?.end();
  rmSync(dir, { recursive: true, force: true });
});
const file = fileTeardown();

const rowFn = (o: { names: string[]; ids: number[] }) => ({
  ent_list_str: o.names.join(','),
  mapped_list_str: o.ids.join(','),
});

function config(name: string, pipeline: Record<string, unknown>): SluiceConfig {
  return validateConfig(
    mergeLayers(structuredClone(defaults), {
      database: { url },
      kafka: { brokers: BROKERS },
      producer: { pageSize: 100, flushMs: 5 },
      fetcher: { groupId: randomName('g') },
      worker: { pollMs: 20 },
      spool: { dir: join(dir, name) },
      pipelines: {
        [name]: {
          topic: randomName('sluice-res'),
          partitions: 2,
          stages: [
            { name: 'ner', run: async (p: { body: string }) => ({ names: p.body.split(' '), ids: [p.body.length] }) },
          ],
          ...pipeline,
        },
      },
    }),
  );
}

async function fetchAll(c: SluiceConfig, name: string, n: number): Promise<void> {
  const f = await startFetcher({ config: c, pipeline: name, log });
  try {
    await waitFor(`${n} spooled`, async () => (await spoolDepth(spoolPaths(c.spool.dir, name))).items >= n, 60_000);
  } finally {
    await f.stop();
  }
}

describe('a pipeline with a result table of the user', () => {
  it(
    'counts the offline run as done, refuses duplicate keys with the fix, ' +
      'publishes only the rest, writes one row per key',
    async () => {
      const name = randomName('r');
      await db.query('CREATE TABLE docs_a (doc_id BIGINT PRIMARY KEY, body VARCHAR(100) NOT NULL)');
      await db.query("INSERT INTO docs_a SELECT seq, CONCAT('alpha beta ', seq) FROM seq_1_to_100");
      await db.query(
        'CREATE TABLE map_a (id INT AUTO_INCREMENT PRIMARY KEY, doc_id BIGINT NOT ' +
          'NULL, ent_list_str TEXT, mapped_list_str TEXT, create_time TIMESTAMP ' +
          'DEFAULT CURRENT_TIMESTAMP)',
      );
      // An offline run did 40% of the work, and its load left three keys twice.
      await db.query(
        "INSERT INTO map_a (doc_id, ent_list_str, mapped_list_str) SELECT seq, 'offline', 'offline' FROM seq_1_to_40",
      );
      await db.query(
        'INSERT INTO map_a (doc_id, ent_list_str, mapped_list_str) VALUES (3, ' +
          "'dup', 'dup'), (7, 'dup', 'dup'), (9, 'dup', 'dup')",
      );
      const results = { table: 'map_a', key: 'doc_id', columns: ['ent_list_str', 'mapped_list_str'], row: rowFn };
      const c = config(name, { source: { table: 'docs_a', key: 'doc_id', columns: ['body'] }, results });
      await assert.rejects(produce({ config: c, pipeline: name, log }), (e: unknown) => {
        assert.match(
          (e as Error).message,
          new RegExp(
            `pipelines\\.${name}\\.results\\.key: 'map_a\\.doc_id' has no unique index of its own \\(an ` +
              `upsert needs one\\); it holds 3 duplicated key\\(s\\)`,
          ),
        );
        assert.equal((e as { hint?: string }).hint, 'ALTER TABLE map_a ADD UNIQUE (doc_id)');
        return true;
      });
      await db.query("DELETE FROM map_a WHERE ent_list_str = 'dup'");
      await db.query('ALTER TABLE map_a ADD UNIQUE (doc_id)');

      const dry = await produce({ config: c, pipeline: name, log, dryRun: true });
      assert.deepEqual([dry.counts?.source, dry.counts?.done, dry.counts?.pending], [100, 40, 60]);
      const first = await produce({ config: c, pipeline: name, log });
      assert.equal(first.published, 60);
      await fetchAll(c, name, 60);
      const w = await startWorker({ config: c, pipeline: name, log, exitWhenIdle: true });
      assert.equal((await w.done).done, 60);
      const [rows] = await db.query<RowDataPacket[]>(
        'SELECT doc_id, ent_list_str, mapped_list_str FROM map_a ORDER BY doc_id',
      );
      assert.equal(rows.length, 100, 'one row per source key');
      assert.deepEqual(
        [rows[0]!.ent_list_str, rows[40]!.ent_list_str, rows[40]!.mapped_list_str],
        ['offline', 'alpha,beta,41', '13'],
      );
      assert.equal((await produce({ config: c, pipeline: name, log })).published, 0, 'a rerun publishes nothing');
      const [[bk]] = await db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sluice_milestones WHERE pipeline = ?', [
        name,
      ]);
      assert.equal(Number(bk?.n), 60, "sluice's own bookkeeping (milestones) for the tasks it ran");
      const [[none]] = await db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sluice_results WHERE pipeline = ?', [
        name,
      ]);
      assert.equal(Number(none?.n), 0, 'the result is the row in the user table');
    },
  );

  it(
    'a redelivered task never adds a row; a second result for a key: ' +
      "onConflict 'update' replaces it, 'keep' leaves it",
    async () => {
      await db.query('CREATE TABLE docs_b (id INT PRIMARY KEY, body VARCHAR(50) NOT NULL)');
      await db.query("INSERT INTO docs_b VALUES (1, 'one'), (2, 'two')");
      await db.query('CREATE TABLE map_b (id INT PRIMARY KEY, ent_list_str TEXT, mapped_list_str TEXT)');
      await db.query("INSERT INTO map_b VALUES (1, 'before', 'before')");
      const name = randomName('r');
      const c = config(name, {
        source: { table: 'docs_b', key: 'id', columns: ['body'] },
        results: { table: 'map_b', key: 'id', columns: ['ent_list_str', 'mapped_list_str'], row: rowFn },
      });
      // Both keys delivered twice, key 1 although it is already done (a replayed partition).
      const writer = new SpoolWriter(spoolPaths(c.spool.dir, name), 10);
      await writer.open();
      const task = (key: number, body: string) => ({
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
        [1, 2, 1, 2].map((k, i) => ({ partition: 0, offset: String(i), task: task(k, k === 1 ? 'one' : 'two') })),
      );
      await (
        await startWorker({ config: c, pipeline: name, log, exitWhenIdle: true })
      ).done;
      const [rows] = await db.query<RowDataPacket[]>('SELECT id, ent_list_str FROM map_b ORDER BY id');
      assert.deepEqual(
        rows.map((r) => [Number(r.id), String(r.ent_list_str)]),
        [
          [1, 'before'],
          [2, 'two'],
        ],
        'a done key is skipped; one row per key',
      );

      // Two machines finishing the same key at once both write: the table's upsert decides which row stays.
      const pool = await openPool(dbConfig(url), { poolSize: 1 });
      try {
        const ledger = new LedgerWriter(pool, log, { maxBatch: 10, flushMs: 1, databaseUrl: url });
        const info = (await checkPipelineTables(pool, c.pipelines[name]!)).results!;
        const write = (value: string, onConflict: 'keep' | 'update') =>
          ledger.write({
            kind: 'row',
            pipeline: name,
            key: '2',
            results: { ...info, onConflict },
            values: [value, value],
          });
        await write('second', 'keep');
        const [[kept]] = await db.query<RowDataPacket[]>(
          'SELECT ent_list_str AS e, (SELECT COUNT(*) FROM map_b) AS n FROM map_b WHERE id = 2',
        );
        assert.deepEqual([kept?.e, Number(kept?.n)], ['two', 2]);
        await write('third', 'update');
        const [[updated]] = await db.query<RowDataPacket[]>(
          'SELECT ent_list_str AS e, (SELECT COUNT(*) FROM map_b) AS n FROM map_b WHERE id = 2',
        );
        assert.deepEqual([updated?.e, Number(updated?.n)], ['third', 2]);
        await ledger.close();
      } finally {
        await pool.end();
      }
    },
  );

  it(
    'keys that differ only by case or a trailing space stay distinct on a ' +
      'no-pad binary collation; doctor refuses a case-insensitive one and ' +
      'counts the collisions',
    async () => {
      const name = randomName('r');
      await db.query(
        'CREATE TABLE docs_c (k VARCHAR(20) COLLATE utf8mb4_nopad_bin PRIMARY KEY, body VARCHAR(20) NOT NULL)',
      );
      await db.query("INSERT INTO docs_c VALUES ('a', 'x'), ('A', 'y'), ('a ', 'z')");
      await db.query(
        'CREATE TABLE map_c (k VARCHAR(20) COLLATE utf8mb4_nopad_bin PRIMARY KEY, ' +
          'ent_list_str TEXT, mapped_list_str TEXT)',
      );
      await db.query("INSERT INTO map_c VALUES ('A', 'offline', 'offline')");
      const results = { table: 'map_c', key: 'k', columns: ['ent_list_str', 'mapped_list_str'], row: rowFn };
      const c = config(name, { source: { table: 'docs_c', key: 'k', columns: ['body'] }, results });
      const dry = await produce({ config: c, pipeline: name, log, dryRun: true });
      assert.deepEqual([dry.counts?.done, dry.counts?.pending], [1, 2]);
      const first = await produce({ config: c, pipeline: name, log });
      assert.equal(first.published, 2);
      await fetchAll(c, name, 2);
      await (
        await startWorker({ config: c, pipeline: name, log, exitWhenIdle: true })
      ).done;
      const [rows] = await db.query<RowDataPacket[]>('SELECT HEX(k) AS k, ent_list_str AS e FROM map_c ORDER BY k');
      assert.deepEqual(
        rows.map((r) => [String(r.k), String(r.e)]),
        [
          ['41', 'offline'],
          ['61', 'x'],
          ['6120', 'z'],
        ],
      );

      await db.query(
        'CREATE TABLE map_ci (k VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY ' +
          'KEY, ent_list_str TEXT, mapped_list_str TEXT)',
      );
      const cfg = join(dir, `${name}.config.mjs`);
      writeFileSync(
        cfg,
        `export default { pipelines: { ci: { source: { table: 'docs_c', key: 'k', ` +
          `columns: ['body'] }, results: { table: 'map_ci', key: 'k', columns: ` +
          `['ent_list_str'], row: () => ({}) } } } };\n`,
      );
      const doctor = await runCli(['doctor', '--pipeline', 'ci', '--config', cfg, '--brokers', BROKERS.join(',')], {
        env: { DATABASE_URL: url },
      });
      assert.equal(doctor.code, 2, doctor.stderr);
      assert.match(
        doctor.stderr,
        seq(
          /'map_ci\.k' \(varchar\(20\) utf8mb4_general_ci\) can merge keys of 'docs_c\.k' /,
          /.*3 source key\(s\) collide today, e\.g\. "A" and "a "/,
        ),
      );
    },
  );

  it('source.where limits every count and what is published; a bad condition is one line, exit 2', async () => {
    const name = randomName('r');
    await db.query(
      "CREATE TABLE docs_d (id INT PRIMARY KEY, lang VARCHAR(2) NOT NULL, body VARCHAR(20) NOT NULL DEFAULT 'b')",
    );
    await db.query("INSERT INTO docs_d (id, lang) SELECT seq, IF(seq % 4 = 0, 'de', 'en') FROM seq_1_to_40");
    const c = config(name, { source: { table: 'docs_d', key: 'id', columns: ['body'], where: "lang = 'en'" } });
    const dry = await produce({ config: c, pipeline: name, log, dryRun: true });
    assert.deepEqual([dry.counts?.source, dry.counts?.pending], [30, 30]);
    assert.equal((await produce({ config: c, pipeline: name, log })).published, 30);
    const cfg = join(dir, `${name}.config.mjs`);
    writeFileSync(
      cfg,
      `export default { pipelines: { bad: { source: { table: 'docs_d', key: ` +
        `'id', columns: [], where: "no_such_column = 1" } } } };\n`,
    );
    const r = await runCli(['produce', '--pipeline', 'bad', '--config', cfg], { env: { DATABASE_URL: url } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr.trim(),
      seq(
        /^sluice: pipelines\.bad\.source\.where: the database refuses "no_such_column = 1": /,
        /Unknown column 'no_such_column'/,
      ),
    );
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });

  it('bad result-table configuration: one clear line each, exit 2, nothing written', async () => {
    await db.query('CREATE TABLE docs_e (id INT PRIMARY KEY, body TEXT)');
    await db.query('CREATE TABLE map_null (id INT NULL, UNIQUE (id), v TEXT)');
    await db.query('CREATE TABLE map_text (id VARCHAR(10) PRIMARY KEY, v TEXT)');
    await db.query('CREATE TABLE map_ok (id INT PRIMARY KEY, v TEXT)');
    const cases: Array<[string, RegExp]> = [
      [
        "{ table: 'map_missing', key: 'id', columns: ['v'] }",
        /results\.table: result table 'map_missing' does not exist/,
      ],
      [
        "{ table: 'map_null', key: 'id', columns: ['v'] }",
        /results\.key: 'map_null\.id' may be NULL; .* ALTER TABLE map_null MODIFY id int\(11\) NOT NULL$/,
      ],
      ["{ table: 'map_ok', key: 'id', columns: ['nope'] }", /results: result table 'map_ok' has no column\(s\) nope/],
      [
        "{ table: 'map_text', key: 'id', columns: ['v'] }",
        /results\.key: 'map_text\.id' is varchar\(10\), the source key is an integer/,
      ],
    ];
    for (const [results, message] of cases) {
      const cfg = join(dir, `${randomName('bad')}.config.mjs`);
      writeFileSync(
        cfg,
        `export default { pipelines: { bad: { source: { table: 'docs_e', key: ` +
          `'id', columns: [] }, results: { ...${results}, row: () => ({}) }, ` +
          `stages: [{ name: 's', run: (p) => p }] } } };\n`,
      );
      for (const command of ['produce', 'doctor', 'work']) {
        const r = await runCli([command, '--pipeline', 'bad', '--config', cfg], {
          env: { DATABASE_URL: url, SLUICE_SPOOL_DIR: join(dir, 'spool-bad') },
        });
        assert.equal(r.code, 2, `${command} ${results}: ${r.stderr}`);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.match(r.stderr.trim(), message);
      }
    }
    const [[d]] = await db.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM sluice_dispatches WHERE pipeline = 'bad'");
    assert.equal(Number(d?.n), 0);
  });

  it('a row() that throws or names a column outside results.columns quarantines that task alone', async () => {
    await db.query('CREATE TABLE docs_f (id INT PRIMARY KEY, body VARCHAR(50) NOT NULL)');
    await db.query("INSERT INTO docs_f VALUES (1, 'fine'), (2, 'throws'), (3, 'extra')");
    await db.query('CREATE TABLE map_f (id INT PRIMARY KEY, ent_list_str TEXT, mapped_list_str TEXT)');
    const name = randomName('r');
    const row = (o: { names: string[] }) => {
      if (o.names[0] === 'throws') throw new Error('cannot map this one');
      return o.names[0] === 'extra'
        ? { ent_list_str: 'x', surprise: 1 }
        : { ent_list_str: o.names.join(','), mapped_list_str: '' };
    };
    const c = config(name, {
      source: { table: 'docs_f', key: 'id', columns: ['body'] },
      results: { table: 'map_f', key: 'id', columns: ['ent_list_str', 'mapped_list_str'], row },
    });
    const writer = new SpoolWriter(spoolPaths(c.spool.dir, name), 10);
    await writer.open();
    await writer.writeItems(
      0,
      [1, 2, 3].map((k, i) => ({
        partition: 0,
        offset: String(i),
        task: {
          v: 1 as const,
          pipeline: name,
          key: k,
          payload: { body: ['fine', 'throws', 'extra'][i] },
          attempt: 1,
          runId: 'r',
          producedAt: '',
        },
      })),
    );
    const stats = await (await startWorker({ config: c, pipeline: name, log, exitWhenIdle: true })).done;
    assert.deepEqual([stats.done, stats.quarantined], [1, 2]);
    const [dead] = await db.query<RowDataPacket[]>(
      'SELECT CAST(task_key AS CHAR) AS k, error_class, error_message FROM ' +
        'sluice_dead_tasks WHERE pipeline = ? ORDER BY k',
      [name],
    );
    assert.deepEqual(
      dead.map((d) => [String(d.k), String(d.error_class), String(d.error_message)]),
      [
        ['2', 'ResultRowError', 'results.row threw: cannot map this one'],
        [
          '3',
          'ResultRowError',
          'results.row returned column(s) surprise outside results.columns (ent_list_str, mapped_list_str)',
        ],
      ],
    );
    const [rows] = await db.query<RowDataPacket[]>('SELECT id FROM map_f');
    assert.deepEqual(
      rows.map((r) => Number(r.id)),
      [1],
    );
  });

  it(
    'inspect tells done, pending, in flight, quarantined and unknown keys, in ' + 'text and JSON, hostile keys too',
    async () => {
      const name = 'insp';
      await db.query('CREATE TABLE docs_g (k VARCHAR(600) COLLATE utf8mb4_nopad_bin PRIMARY KEY, body TEXT)');
      const hostile = `it's ../"x" 🦀 ${'z'.repeat(500)}`;
      await db.query(
        "INSERT INTO docs_g (k, body) VALUES ('done-1', 'b'), ('pending-1', 'b'), " +
          "('flight-1', 'b'), ('dead-1', 'b'), (?, 'b')",
        [hostile],
      );
      await db.query('CREATE TABLE map_g (k VARCHAR(600) COLLATE utf8mb4_nopad_bin PRIMARY KEY, ent_list_str TEXT)');
      await db.query("INSERT INTO map_g VALUES ('done-1', 'offline')");
      await db.query(
        'INSERT INTO sluice_dispatches (pipeline, task_key, run_id, topic, ' +
          "dispatched_at) VALUES ('insp', 'flight-1', 'run-9', 't', NOW(3)), " +
          "('insp', ?, 'run-9', 't', NOW(3) - INTERVAL 2 DAY)",
        [hostile],
      );
      await db.query(
        'INSERT INTO sluice_dead_tasks (pipeline, task_key, stage, error_class, ' +
          "error_message, attempts) VALUES ('insp', 'dead-1', 'ner', " +
          "'NonRetriableError', 'empty document', 1)",
      );
      await db.query(
        'INSERT INTO sluice_attempts (pipeline, task_key, stage, attempt, ' +
          "error_class, error_message, retriable) VALUES ('insp', 'dead-1', 'ner', " +
          "1, 'NonRetriableError', 'empty document', 0)",
      );
      await db.query(
        'INSERT INTO sluice_milestones (pipeline, task_key, stage, output, ' +
          "duration_ms) VALUES ('insp', 'dead-1', 'fetch', 'null', 12)",
      );
      const cfg = join(dir, 'inspect.config.mjs');
      writeFileSync(
        cfg,
        `export default { ` +
          `spool: { dir: ${JSON.stringify(join(dir, 'spool-insp'))} }, pipelines: ` +
          `{ insp: { source: { table: 'docs_g', key: 'k', columns: ` +
          `['body'] }, results: { table: 'map_g', key: 'k', columns: ` +
          `['ent_list_str'], row: (o) => ({ ent_list_str: String(o) }) }, stages: ` +
          `[{ name: 'ner', run: (p) => p }] } } };\n`,
      );
      const inspect = (key: string, json = false) =>
        runCli(['inspect', '--pipeline', name, '--config', cfg, ...(json ? ['--json'] : []), '--', key], {
          env: { DATABASE_URL: url },
        });
      const states: Array<[string, string]> = [
        ['done-1', 'done'],
        ['pending-1', 'pending'],
        ['flight-1', 'in flight'],
        ['dead-1', 'quarantined'],
        ['nobody', 'not in source'],
        [hostile, 'pending'],
      ];
      for (const [key, state] of states) {
        const j = await inspect(key, true);
        assert.equal(j.code, 0, j.stderr);
        const r = JSON.parse(j.stdout) as {
          key: string;
          state: string;
          result: { ent_list_str?: string } | null;
          dispatch: { run_id: string } | null;
          attempts: unknown[];
          milestones: unknown[];
        };
        assert.equal(r.key, key);
        assert.equal(r.state, state, key);
        if (key === 'done-1') assert.equal(r.result?.ent_list_str, 'offline');
        if (key === 'flight-1') assert.equal(r.dispatch?.run_id, 'run-9');
        if (key === 'dead-1') assert.deepEqual([r.attempts.length, r.milestones.length], [1, 1]);
      }
      const text = await inspect('dead-1');
      assert.match(text.stdout, /^key "dead-1": quarantined$/m);
      assert.match(text.stdout, /quarantined .* at stage ner: NonRetriableError: empty document/);
      assert.match(text.stdout, /failed {6}ner attempt 1 .*: NonRetriableError: empty document/);
    },
  );
});
