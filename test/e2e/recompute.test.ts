// Recompute when a stage changes, on the real MariaDB and Kafka: a 3-stage pipeline into the user's result table,
// done once, then run again with a stage's version changed (or forced from a stage, or accepted). Exactly the done
// tasks are published, the stages before the changed one are not called, the user's rows are replaced in place, a
// second --recompute publishes nothing, and an output that comes out the same stops the recompute there.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { defaults, mergeLayers, type SluiceConfig } from '../../src/config/config.js';
import { validateConfig } from '../../src/config/validate.js';
import { silentLogger } from '../../src/core/logger.js';
import { migrate } from '../../src/db/migrate.js';
import { startFetcher } from '../../src/fetcher/fetcher.js';
import { produce, type ProduceOptions, type ProduceSummary } from '../../src/producer/producer.js';
import { spoolDepth } from '../../src/spool/depth.js';
import { spoolPaths } from '../../src/spool/layout.js';
import { collectStatus, isCurrent } from '../../src/status/collect.js';
import { inspectTask } from '../../src/ledger/inspect.js';
import { openPool } from '../../src/db/pool.js';
import { checkPipelineTables } from '../../src/user-tables/pipeline-tables.js';
import { startWorker } from '../../src/worker/worker.js';
import { dbConfig, randomName, testDatabase } from '../helpers/db.js';
import { fileTeardown, onTeardown, tempDir } from '../helpers/fixtures.js';
import { BROKERS, ensureKafka } from '../helpers/kafka.js';
import { waitFor } from '../helpers/spool.js';

const log = silentLogger();
const file = fileTeardown();
let url: string;
let db: Connection;
let dir: string;
const ROWS = 30;

before(async () => {
  await ensureKafka();
  url = await testDatabase(file);
  await migrate(dbConfig(url), log);
  db = await mysql.createConnection(url);
  onTeardown(file, () => db.end());
  dir = tempDir(file, 'sluice-recompute-');
});

/** Calls per stage, counted by the stages themselves. */
type Calls = Record<'ner' | 'lookup' | 'match', number>;

interface Versions {
  ner?: string;
  lookup?: string;
  match?: string;
  /** What lookup adds to its output: a change of it changes what match receives. */
  lookupTag?: string;
  /** Only the first n stages (a stage added later). */
  stages?: number;
  /** Results into sluice_results instead of the user's table. */
  ledgerResults?: boolean;
}

interface Pipe {
  name: string;
  source: string;
  result: string;
  calls: Calls;
  config(v: Versions): SluiceConfig;
}

async function pipe(): Promise<Pipe> {
  const name = randomName('rc');
  const source = randomName('docs');
  const result = randomName('out');
  await db.query(`CREATE TABLE ${source} (id INT PRIMARY KEY, body VARCHAR(40) NOT NULL)`);
  await db.query(`INSERT INTO ${source} SELECT seq, CONCAT('doc ', seq) FROM seq_1_to_${ROWS}`);
  await db.query(`CREATE TABLE ${result} (doc_id INT PRIMARY KEY, label VARCHAR(80) NOT NULL)`);
  const topic = randomName('sluice-rc');
  const calls: Calls = { ner: 0, lookup: 0, match: 0 };
  const config = (v: Versions): SluiceConfig =>
    validateConfig(
      mergeLayers(structuredClone(defaults), {
        database: { url },
        kafka: { brokers: BROKERS },
        producer: { pageSize: 7, flushMs: 5 },
        worker: { pollMs: 20 },
        spool: { dir: join(dir, name) },
        pipelines: {
          [name]: {
            topic,
            partitions: 2,
            source: { table: source, key: 'id', columns: ['body'] },
            ...(v.ledgerResults === true
              ? {}
              : {
                  results: {
                    table: result,
                    key: 'doc_id',
                    columns: ['label'],
                    row: (o: { label?: string; text: string }) => ({ label: o.label ?? o.text }),
                  },
                }),
            stages: [
              {
                name: 'ner',
                version: v.ner,
                run: async (p: { body: string }) => (calls.ner++, { text: p.body }),
              },
              {
                name: 'lookup',
                version: v.lookup,
                run: async (o: { text: string }) => (calls.lookup++, { text: `${o.text}${v.lookupTag ?? ''}` }),
              },
              {
                name: 'match',
                version: v.match,
                run: async (o: { text: string }) => (calls.match++, { label: `${o.text}/${v.match ?? '1'}` }),
              },
            ].slice(0, v.stages ?? 3),
          },
        },
      }),
    );
  return { name, source, result, calls, config };
}

/** produce, then spool everything it published and work it off. */
async function runOnce(p: Pipe, c: SluiceConfig, extra: Partial<ProduceOptions> = {}): Promise<ProduceSummary> {
  const s = await produce({ config: c, pipeline: p.name, log, ...extra });
  await drain(p, c, s.published);
  return s;
}

/** Spools the `n` messages published last and works them off. */
async function drain(p: Pipe, c: SluiceConfig, n: number): Promise<void> {
  if (n === 0) return;
  const f = await startFetcher({ config: c, pipeline: p.name, log });
  try {
    const paths = spoolPaths(c.spool.dir, p.name);
    await waitFor(`${n} spooled`, async () => (await spoolDepth(paths)).items >= n, 60_000);
  } finally {
    await f.stop();
  }
  await (
    await startWorker({ config: c, pipeline: p.name, log, exitWhenIdle: true })
  ).done;
}

const reset = (calls: Calls): void => void Object.assign(calls, { ner: 0, lookup: 0, match: 0 });

async function labels(p: Pipe): Promise<Map<number, string>> {
  const [rows] = await db.query<RowDataPacket[]>(`SELECT doc_id, label FROM ${p.result}`);
  return new Map(rows.map((r) => [Number(r.doc_id), String(r.label)]));
}

async function versionsOf(p: Pipe, stage: string): Promise<Record<string, number>> {
  const [rows] = await db.query<RowDataPacket[]>(
    'SELECT version, COUNT(*) AS n FROM sluice_milestones WHERE pipeline = ? AND stage = ? GROUP BY version',
    [p.name, stage],
  );
  return Object.fromEntries(rows.map((r) => [String(r.version), Number(r.n)]));
}

describe('produce --recompute after a stage version changed', () => {
  it('publishes exactly the done tasks, reruns that stage and the ones after it, and replaces the rows', async () => {
    const p = await pipe();
    assert.equal((await runOnce(p, p.config({}))).published, ROWS);
    assert.deepEqual(p.calls, { ner: ROWS, lookup: ROWS, match: ROWS });
    reset(p.calls);

    const v2 = p.config({ lookup: '2026-12-lookup-b', lookupTag: '+b' });
    const dry = await produce({ config: v2, pipeline: p.name, log, dryRun: true, recompute: {} });
    assert.deepEqual(dry.recompute?.groups, [{ stage: 'lookup', from: '1', to: '2026-12-lookup-b', tasks: ROWS }]);
    const before = await collectStatus(v2, p.name, log, { current: true, exact: true });
    assert.equal(before.staleTasks, ROWS);
    assert.equal(isCurrent(before), false);

    const s = await runOnce(p, v2, { recompute: {} });
    assert.deepEqual([s.found, s.published, s.recompute?.stale], [ROWS, ROWS, ROWS]);
    assert.deepEqual(p.calls, { ner: 0, lookup: ROWS, match: ROWS }, 'the stage before the changed one is reused');
    const rows = await labels(p);
    assert.equal(rows.size, ROWS, 'replaced in place: one row per key');
    assert.equal(rows.get(7), 'doc 7+b/1');
    assert.deepEqual(await versionsOf(p, 'lookup'), { '2026-12-lookup-b': ROWS });
    const [[left]] = await db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sluice_recomputes WHERE pipeline = ?', [
      p.name,
    ]);
    assert.equal(Number(left?.n), 0, 'every request carried out');

    const after = await collectStatus(v2, p.name, log, { current: true, exact: true });
    assert.deepEqual([after.staleTasks, isCurrent(after)], [0, true]);
    reset(p.calls);
    const again = await produce({ config: v2, pipeline: p.name, log, recompute: {} });
    assert.deepEqual([again.published, again.recompute?.checkedByIndex], [0, true], 'answered from the index');
  });

  it('stops where the output comes out the same: a stage after it is not called (early cutoff)', async () => {
    const p = await pipe();
    await runOnce(p, p.config({}));
    reset(p.calls);
    // A new lookup version whose output is the same as before.
    const s = await runOnce(p, p.config({ lookup: '2' }), { recompute: {} });
    assert.equal(s.published, ROWS);
    assert.deepEqual(p.calls, { ner: 0, lookup: ROWS, match: 0 });
    assert.deepEqual(await versionsOf(p, 'lookup'), { '2': ROWS });
    assert.equal((await labels(p)).get(3), 'doc 3/1');
    const again = await produce({ config: p.config({ lookup: '2' }), pipeline: p.name, log, recompute: {} });
    assert.equal(again.published, 0);
  });

  it('--from-stage recomputes the chosen tasks from that stage, versions or not; --where chooses', async () => {
    const p = await pipe();
    await runOnce(p, p.config({}));
    reset(p.calls);
    const c = p.config({});
    const s = await runOnce(p, c, { recompute: { fromStage: 'match' }, where: 'id <= 10' });
    assert.equal(s.published, 10);
    assert.deepEqual(p.calls, { ner: 0, lookup: 0, match: 10 });
    await assert.rejects(
      produce({ config: c, pipeline: p.name, log, recompute: { fromStage: 'nope' } }),
      /no stage 'nope' in pipeline/,
    );
  });

  it('--accept marks the new version current for the selected tasks: nothing runs, nothing is stale', async () => {
    const p = await pipe();
    await runOnce(p, p.config({}));
    reset(p.calls);
    const c = p.config({ ner: 'ner-large' });
    const accepted = await produce({ config: c, pipeline: p.name, log, recompute: { accept: 'ner' } });
    assert.equal(accepted.recompute?.accepted, ROWS);
    assert.equal(accepted.published, 0);
    const dry = await produce({ config: c, pipeline: p.name, log, dryRun: true, recompute: {} });
    assert.deepEqual(dry.recompute?.groups, []);
    assert.deepEqual(p.calls, { ner: 0, lookup: 0, match: 0 });
  });

  it("leaves an offline run's results alone unless asked, then runs every stage for them", async () => {
    const p = await pipe();
    // An earlier offline run filled rows 1-10: results without milestones.
    await db.query(`INSERT INTO ${p.result} SELECT seq, 'offline' FROM seq_1_to_10`);
    assert.equal((await runOnce(p, p.config({}))).published, ROWS - 10);
    reset(p.calls);
    const c = p.config({});
    assert.equal((await produce({ config: c, pipeline: p.name, log, recompute: {} })).published, 0);
    const s = await runOnce(p, c, { recompute: { includeOffline: true } });
    assert.equal(s.published, 10);
    assert.deepEqual(p.calls, { ner: 10, lookup: 10, match: 10 });
    assert.equal((await labels(p)).get(4), 'doc 4/1');
  });

  it('publishes fresh tasks first, then the stale ones, in the same run', async () => {
    const p = await pipe();
    await runOnce(p, p.config({}));
    await db.query(`INSERT INTO ${p.source} SELECT seq, CONCAT('doc ', seq) FROM seq_${ROWS + 1}_to_${ROWS + 5}`);
    reset(p.calls);
    const s = await runOnce(p, p.config({ match: '2' }), { recompute: {} });
    assert.deepEqual([s.published, s.recompute?.stale], [ROWS + 5, ROWS]);
    assert.deepEqual(p.calls, { ner: 5, lookup: 5, match: ROWS + 5 });
    assert.equal((await labels(p)).size, ROWS + 5);
    assert.equal((await labels(p)).get(ROWS + 2), `doc ${ROWS + 2}/2`);
  });

  it('a stage added after tasks were done makes them stale from the added stage', async () => {
    const p = await pipe();
    const c = p.config({});
    // Done with two stages: the third is added later.
    await runOnce(p, p.config({ stages: 2 }));
    reset(p.calls);
    await new Promise((r) => setTimeout(r, 20));
    const dry = await produce({ config: c, pipeline: p.name, log, dryRun: true, recompute: {} });
    assert.deepEqual(dry.recompute?.groups, [{ stage: 'match', from: null, to: '1', tasks: ROWS }]);
    await runOnce(p, c, { recompute: {} });
    assert.deepEqual(p.calls, { ner: 0, lookup: 0, match: ROWS });
    assert.equal((await labels(p)).get(5), 'doc 5/1');
  });

  it("replaces the result in sluice_results when the pipeline has no result table of the user's", async () => {
    const p = await pipe();
    await runOnce(p, p.config({ ledgerResults: true }));
    reset(p.calls);
    const s = await runOnce(p, p.config({ ledgerResults: true, match: '2' }), { recompute: {} });
    assert.equal(s.published, ROWS);
    assert.deepEqual(p.calls, { ner: 0, lookup: 0, match: ROWS });
    const [rows] = await db.query<RowDataPacket[]>(
      'SELECT COUNT(*) AS n, SUM(JSON_VALUE(output, "$.label") LIKE "%/2") AS new FROM sluice_results ' +
        'WHERE pipeline = ?',
      [p.name],
    );
    assert.deepEqual([Number(rows[0]?.n), Number(rows[0]?.new)], [ROWS, ROWS]);
  });

  it('--keys-file chooses tasks by their keys as typed, and names the line of a key that is none', async () => {
    const p = await pipe();
    const c = p.config({});
    await runOnce(p, c);
    reset(p.calls);
    const typedKeys = { label: 'keys.txt', lines: ['3', '', '5', ''] };
    const s = await runOnce(p, c, { recompute: { fromStage: 'lookup' }, typedKeys });
    assert.equal(s.published, 2);
    // lookup gives what it gave before: match stays (early cutoff).
    assert.deepEqual(p.calls, { ner: 0, lookup: 2, match: 0 });
    await assert.rejects(
      produce({
        config: c,
        pipeline: p.name,
        log,
        recompute: {},
        typedKeys: { label: 'keys.txt', lines: ['3', 'x7'] },
      }),
      /keys\.txt:2: key "x7"/,
    );
  });

  it("--rate paces the stale tasks; inspect shows each milestone's version and what it replaced", async () => {
    const p = await pipe();
    await runOnce(p, p.config({}));
    const c = p.config({ match: '2' });
    const t0 = performance.now();
    const s = await produce({ config: c, pipeline: p.name, log, recompute: { ratePerSecond: 20 } });
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(s.published, ROWS);
    assert.ok(seconds >= (ROWS - 1) / 20, `${ROWS} tasks at 20/s took ${seconds.toFixed(2)} s`);
    await drain(p, c, ROWS);
    const pool = await openPool(c.database, { poolSize: 1 });
    onTeardown(file, () => pool.end());
    const src = await checkPipelineTables(pool, c.pipelines[p.name]!);
    const record = await inspectTask(pool, src, p.name, '9', c.producer.staleAfterMs);
    assert.deepEqual(record.milestones.map((m) => [m.stage, m.version, m.replaced]).sort(), [
      ['lookup', '1', null],
      ['match', '2', '1'],
      ['ner', '1', null],
    ]);
  });
});
