// `npm run status`: the numbers a user reads to know where a pipeline stands, and --check for gating.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import { silentLogger } from '../../src/core/logger.js';
import { migrate } from '../../src/db/migrate.js';
import { runCli } from '../helpers/cli.js';
import { dbConfig, randomName, testDatabase } from '../helpers/db.js';
import { BROKERS, ensureKafka } from '../helpers/kafka.js';

describe('npm run status', () => {
  it(
    'reports source, done, pending, in flight, quarantined, stages, errors, ' +
      'lag and spool; --check gates on completion',
    async (t) => {
      await ensureKafka();
      const url = await testDatabase(t);
      await migrate(dbConfig(url), silentLogger());
      const db = await mysql.createConnection(url);
      t.after(() => db.end());
      await db.query('CREATE TABLE docs (id INT PRIMARY KEY, body TEXT)');
      await db.query('INSERT INTO docs VALUES ?', [Array.from({ length: 10 }, (_, i) => [i + 1, 'b'])]);
      const now = new Date();
      await db.query('INSERT INTO sluice_results (pipeline, task_key, started_at, finished_at, duration_ms) VALUES ?', [
        [1, 2, 3, 4, 5].map((k) => ['st', String(k), now, now, 1]),
      ]);
      await db.query('INSERT INTO sluice_milestones (pipeline, task_key, stage, output, duration_ms) VALUES ?', [
        [1, 2, 3, 4, 5, 6].map((k) => ['st', String(k), 'first', 'null', 1]),
      ]);
      await db.query(
        'INSERT INTO sluice_dispatches (pipeline, task_key, run_id, topic, ' +
          "dispatched_at) VALUES ('st', '6', 'r', 't', NOW(3)), ('st', '7', 'r', " +
          "'t', NOW(3))",
      );
      await db.query(
        'INSERT INTO sluice_dead_tasks (pipeline, task_key, stage, error_class, ' +
          "error_message, attempts) VALUES ('st', '8', 'first', " +
          "'NonRetriableError', 'empty document', 1)",
      );
      await db.query(
        'INSERT INTO sluice_attempts (pipeline, task_key, stage, attempt, ' +
          "error_class, error_message, retriable) VALUES ('st', '8', 'first', 1, " +
          "'NonRetriableError', 'empty document', 0), ('st', '6', 'first', 1, " +
          "'SluiceError', 'reset', 1), ('st', '6', 'first', 2, 'SluiceError', " +
          "'reset', 1)",
      );
      const dir = mkdtempSync(join(tmpdir(), 'sluice-status-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      writeFileSync(
        join(dir, 'sluice.config.ts'),
        `export default { spool: { dir: ${JSON.stringify(join(dir, 'spool'))} ` +
          `}, pipelines: { st: ` +
          `{ topic: ${JSON.stringify(randomName('sluice-status'))}, source: { ` +
          `table: 'docs', key: 'id', columns: ['body'] }, stages: [{ ` +
          `name: 'first', run: async () => null }] } } };\n`,
      );
      const env = {
        DATABASE_URL: url,
        SLUICE_KAFKA_BROKERS: BROKERS.join(','),
        SLUICE_CONFIG: join(dir, 'sluice.config.ts'),
        SLUICE_LOG_LEVEL: 'silent',
      };

      const r = await runCli(['status', '--pipeline', 'st', '--json'], { env });
      assert.equal(r.code, 0, r.stderr);
      const s = JSON.parse(r.stdout) as Record<string, unknown>;
      for (const k of [
        'pipeline',
        'source',
        'done',
        'pending',
        'inFlight',
        'quarantined',
        'dead',
        'stages',
        'lag',
        'spool',
      ])
        assert.ok(k in s, `key ${k}`);
      assert.deepEqual([s.source, s.done, s.inFlight, s.quarantined, s.pending], [10, 5, 2, 1, 2]);
      assert.equal(s.dead, s.quarantined, 'dead: the earlier name of quarantined, kept for scripts');
      assert.deepEqual(
        (s.stages as Array<{ stage: string; milestones: number }>).map((x) => [x.stage, x.milestones]),
        [['first', 6]],
      );
      assert.deepEqual(
        (s.errors as Array<{ errorClass: string; count: number }>).map((e) => [e.errorClass, e.count]),
        [
          ['SluiceError', 2],
          ['NonRetriableError', 1],
        ],
      );
      assert.deepEqual(s.lag, {}, 'the topic does not exist yet: nothing to lag behind');
      assert.equal((s.spool as { items: number }).items, 0);

      const text = await runCli(['status', '--pipeline', 'st'], { env });
      assert.match(text.stdout, /5 of 10 done/);
      assert.match(text.stdout, /pending 2 {3}in flight 2 {3}quarantined 1/);

      assert.equal((await runCli(['status', '--pipeline', 'st', '--check'], { env })).code, 1);
      // Results for keys outside the source are shown apart and never make up for a missing row.
      await db.query('INSERT INTO sluice_results (pipeline, task_key, started_at, finished_at, duration_ms) VALUES ?', [
        [6, 7, 8, 9, 11].map((k) => ['st', String(k), now, now, 1]),
      ]);
      const orphan = await runCli(['status', '--pipeline', 'st'], { env });
      assert.match(orphan.stdout, /9 of 10 done/);
      assert.match(orphan.stdout, /results without a source row 1 \(not counted as done\)/);
      assert.equal((await runCli(['status', '--pipeline', 'st', '--check'], { env })).code, 1);
      await db.query(
        'INSERT INTO sluice_results (pipeline, task_key, started_at, finished_at, duration_ms) VALUES (?, ?, ?, ?, ?)',
        ['st', '10', now, now, 1],
      );
      assert.equal((await runCli(['status', '--pipeline', 'st', '--check'], { env })).code, 0);
      const est = await runCli(['status', '--pipeline', 'st', '--estimate'], { env });
      // The estimate builds on the exact count --check just stored: it says so, and when.
      assert.match(
        est.stdout,
        /10 of 10 done \(estimate: source and results counted \d+ s ago, plus the ledger since; --exact counts now\)/,
      );
      assert.equal((await runCli(['status', '--pipeline', 'st', '--exact', '--estimate'], { env })).code, 2);
      assert.equal((await runCli(['status', '--pipeline', 'st', '--check', '--estimate'], { env })).code, 2);
    },
  );
});
