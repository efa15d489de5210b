// What the hot paths cost the database, in SQL statements and round trips, counted exactly against a
// counting stand-in for mysql2 (helpers/counting-pool.ts) and a broker-less kafkajs (helpers/fake-kafka.ts).
// The benchmarks measure time; these tests pin the count, so that a change adding one statement per task
// (or per page, or per message) fails here, naming the statement, instead of only slowing a benchmark.
//
// Every count is a named constant below. A lower number is welcome: update the constant. A higher one
// needs a reason, written next to the constant.
//
// The real code runs unchanged, with the default configuration: openWorkerParts wires the segment runner,
// the ledger writer and the task-state read as a worker does; produce() and startFetcher() run whole,
// opening their pools through mysql2's createPool (counted) and their clients through kafkajs (faked).
// Only the statements of the path itself are counted; the start-up checks (migrations, source and result
// table, packet size, ledger probe) come before it, once per process or run. Not on these paths, and not
// counted: the heartbeat of a worker or fetcher (one sluice_processes upsert every 3 s per process, on a
// timer, left out should it fire during a count); fleet-wide resources (none of these pipelines names one;
// their lease statements are per resource and interval, not per task); the resource gate and the metrics
// endpoint (no SQL).
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { EachBatchPayload } from 'kafkajs';
import pLimit from 'p-limit';
import { defaults, getPipeline, mergeLayers, type SluiceConfig } from '../../src/config/config.js';
import { validateConfig } from '../../src/config/validate.js';
import { encodeEnvelope } from '../../src/core/envelope.js';
import { silentLogger } from '../../src/core/logger.js';
import { startFetcher } from '../../src/fetcher/fetcher.js';
import { produce } from '../../src/producer/producer.js';
import { spoolPaths } from '../../src/spool/layout.js';
import type { SpoolItem } from '../../src/spool/segment.js';
import { SpoolWriter } from '../../src/spool/writer.js';
import { LeaseKeeper } from '../../src/worker/lease-keeper.js';
import { openWorkerParts } from '../../src/worker/worker-setup.js';
import { inFlightLimit } from '../../src/worker/worker.js';
import {
  CountingPool,
  freshLedger,
  installCountingPools,
  tally,
  type SqlCall,
  type Tally,
} from '../helpers/counting-pool.js';
import { installFakeKafka } from '../helpers/fake-kafka.js';
import { onTeardown, tempDir } from '../helpers/fixtures.js';

const TASKS = 500;

// Worker, one no-op stage, results in sluice_results. Per segment: which keys have a source row (integer keys
// as literals), then what the ledger knows of them (results, quarantine, milestones, attempts: one UNION ALL,
// counted by its first table). Per wave of tasks in flight (worker.maxInFlight, 256; a segment of 500 runs in
// two): one milestone upsert, one result upsert. The ledger batch (500) never fills: a wave is smaller.
const WORKER_STATEMENTS = 6;
const WORKER_ROUND_TRIPS = 6;
const WORKER_KINDS = {
  'SELECT docs': 1,
  'SELECT sluice_results': 1,
  'INSERT sluice_milestones': 2,
  'INSERT sluice_results': 2,
};

// Worker, results in the user's table (pipeline `results`): "done" is read from that table instead of
// sluice_results, the result row is written there, and no sluice_results row is written (run-task.ts).
// Each batch of result rows is read back in one query (ledger.ts: a row not there for its key fails its task).
const USER_TABLE_STATEMENTS = 9;
const USER_TABLE_ROUND_TRIPS = 9;
const USER_TABLE_KINDS = {
  'SELECT docs': 1,
  'SELECT doc_results': 3,
  'SELECT sluice_dead_tasks': 1,
  'INSERT sluice_milestones': 2,
  'INSERT doc_results': 2,
};

// Producer, a run whose pending tasks fill one page (producer.pageSize 500), from the producer's connect to
// its end: the page, the read-ahead of the next page (a full page may not be the last; this one finds
// nothing), and one dispatch upsert per Kafka batch (500 small messages fit one 1 MiB batch).
const PRODUCER_STATEMENTS = 3;
const PRODUCER_ROUND_TRIPS = 3;
const PRODUCER_KINDS = { 'SELECT docs': 2, 'INSERT sluice_dispatches': 1 };

// Fetcher, one kafkajs batch of 500 messages: validated and spooled without the database. Bad messages are
// recorded in one statement per batch (best effort, not awaited: the spool quarantine is the record).
const FETCHER_GOOD_BATCH_STATEMENTS = 0;
const FETCHER_GOOD_BATCH_ROUND_TRIPS = 0;
const FETCHER_BAD_BATCH_STATEMENTS = 1;
const FETCHER_BAD_BATCH_ROUND_TRIPS = 1;

const SOURCE = { table: 'docs', key: 'id', columns: ['title', 'body'] };
const SCHEMA = {
  source: { table: 'docs', key: 'id', rows: TASKS },
  tables: { docs: { id: 'int', title: 'varchar', body: 'text' }, doc_results: { doc_id: 'int', summary: 'text' } },
};
const noop = { name: 'noop', run: (input: unknown) => input };
const userResults = {
  table: 'doc_results',
  key: 'doc_id',
  columns: ['summary'],
  row: (o: unknown) => ({ summary: JSON.stringify(o) }),
  onConflict: 'keep' as const,
};

/** The defaults with one pipeline, 'docs', and a spool in `dir`; nothing listens at the URLs. */
function configFor(dir: string, pipeline: Record<string, unknown>, over: Record<string, unknown> = {}): SluiceConfig {
  const layers = {
    database: { url: 'mysql://root@127.0.0.1:3306/sluice_counting' },
    kafka: { brokers: ['127.0.0.1:9092'] },
    spool: { dir },
    pipelines: { docs: pipeline },
  };
  return validateConfig(mergeLayers(mergeLayers(structuredClone(defaults), layers), over));
}

/** Counting pools and a fake broker for one test, put back after it. */
function fakeServices(t: TestContext) {
  const db = installCountingPools(freshLedger(SCHEMA));
  const kafka = installFakeKafka();
  onTeardown(t, () => {
    db.restore();
    kafka.restore();
  });
  const pool = (): CountingPool => {
    assert.equal(db.pools.length, 1, 'the component opened one pool');
    return db.pools[0]!;
  };
  return { pool, kafka };
}

/** The heartbeat's timer may fire during a count: it is per process, not on the path measured. */
const onPath = (calls: readonly SqlCall[]): SqlCall[] => calls.filter((c) => c.kind !== 'INSERT sluice_processes');

const perTask = (n: number): string => (n / TASKS).toFixed(3);
const report = (c: Tally): string =>
  `${c.statements} statement(s), ${perTask(c.statements)} per ` +
  `task, in ${c.roundTrips} round trip(s), ${perTask(c.roundTrips)} per ` +
  `task; by kind ${JSON.stringify(c.byKind)}`;

function assertCount(
  c: Tally,
  expected: { statements: number; roundTrips: number; kinds: Record<string, number> },
): void {
  assert.deepEqual(c.byKind, expected.kinds, `statements by kind: ${report(c)}`);
  assert.equal(c.statements, expected.statements, `statements: ${report(c)}`);
  assert.equal(c.roundTrips, expected.roundTrips, `round trips: ${report(c)}`);
}

/** Rows carried by the bulk statements of one kind: the rows of `VALUES ?`, or the keys of a JSON_TABLE list. */
function rowsOf(calls: readonly SqlCall[], kind: string): number {
  return calls
    .filter((c) => c.kind === kind)
    .reduce((n, c) => {
      const bulk = c.params.find(Array.isArray);
      return (
        n +
        (bulk !== undefined
          ? bulk.length
          : (JSON.parse(String(c.params.find((p) => typeof p === 'string' && p.startsWith('[')))) as unknown[]).length)
      );
    }, 0);
}

const task = (key: number): SpoolItem => ({
  partition: 0,
  offset: String(key),
  task: {
    v: 1,
    pipeline: 'docs',
    key,
    payload: { title: `title ${key}`, body: `body ${key}` },
    attempt: 1,
    runId: 'r',
    producedAt: '2026-12-01T00:00:00.000Z',
  },
});

/**
 * One segment of TASKS tasks through a worker's parts, wired by openWorkerParts: claimed from a real spool,
 * run by the segment runner within the worker's slots, recorded by the ledger writer. Returns the SQL of the
 * segment's run alone, from the task-state read to the ledger's last flush.
 */
async function runSegment(t: TestContext, pipeline: Record<string, unknown>): Promise<SqlCall[]> {
  const dir = tempDir(t, 'sluice-statements-');
  const config = configFor(dir, pipeline);
  const { pool } = fakeServices(t);
  const paths = spoolPaths(dir, 'docs');
  const writer = new SpoolWriter(paths, config.spool.maxSegmentItems);
  await writer.open();
  const items = Array.from({ length: TASKS }, (_, i) => task(i + 1));
  await writer.writeItems(0, items);
  const log = silentLogger();
  const parts = await openWorkerParts({ config, pipeline: 'docs', log }, getPipeline(config, 'docs'), paths, 'w1', log);
  const leases = new LeaseKeeper(parts.claimer, config.spool.leaseMs, log);
  onTeardown(t, async () => {
    leases.close();
    await parts.heartbeat.close();
    await parts.ledger.close();
    await parts.pool.end();
  });
  const claim = await parts.claimer.claim();
  assert.ok(claim !== null, 'the segment is ready');
  const held = { claim, items: await parts.claimer.read(claim), settled: new Set<number>(), lost: false };
  assert.equal(held.items.length, TASKS, 'one segment holds every task (spool.maxSegmentItems)');
  const from = pool().calls.length;
  await parts.runner(pLimit(inFlightLimit(config.worker.maxInFlight, config.pipelines.docs!.stages)), leases).run(held);
  assert.equal(parts.stats.done, TASKS, 'every task is done: the happy path ran');
  return onPath(pool().since(from));
}

describe('SQL statements per task: a worker running a segment', () => {
  it(
    `runs ${TASKS} tasks of one stage, results in ` +
      `sluice_results, in ${WORKER_STATEMENTS} ` +
      `statements and ${WORKER_ROUND_TRIPS} round trips: none per task`,
    async (t) => {
      const calls = await runSegment(t, { source: SOURCE, stages: [noop] });
      assertCount(tally(calls), { statements: WORKER_STATEMENTS, roundTrips: WORKER_ROUND_TRIPS, kinds: WORKER_KINDS });
      assert.equal(rowsOf(calls, 'INSERT sluice_milestones'), TASKS, 'a milestone row per task, in bulk statements');
      assert.equal(rowsOf(calls, 'INSERT sluice_results'), TASKS, 'a result row per task, in bulk statements');
    },
  );

  it(
    `runs ${TASKS} tasks into the user's result ` +
      `table in ${USER_TABLE_STATEMENTS} ` +
      `statements and ${USER_TABLE_ROUND_TRIPS} round trips: none per task`,
    async (t) => {
      const calls = await runSegment(t, { source: SOURCE, stages: [noop], results: userResults });
      assertCount(tally(calls), {
        statements: USER_TABLE_STATEMENTS,
        roundTrips: USER_TABLE_ROUND_TRIPS,
        kinds: USER_TABLE_KINDS,
      });
      assert.equal(
        rowsOf(calls, 'INSERT doc_results'),
        TASKS,
        "a row of the user's table per task, in bulk statements",
      );
      assert.equal(rowsOf(calls, 'INSERT sluice_milestones'), TASKS, 'a milestone row per task, in bulk statements');
    },
  );
});

describe('SQL statements per page: the producer', () => {
  it(
    `publishes a page of ${TASKS} pending tasks and records their ` +
      `dispatch in ${PRODUCER_STATEMENTS} ` +
      `statements and ${PRODUCER_ROUND_TRIPS} round trips: none per task`,
    async (t) => {
      const config = configFor(
        tempDir(t, 'sluice-statements-'),
        { source: SOURCE, stages: [noop] },
        { producer: { pageSize: TASKS } },
      );
      const { pool, kafka } = fakeServices(t);
      // produce() connects its Kafka producer after the start-up checks, just before the first page is read.
      let from = -1;
      kafka.onProducerConnect = () => (from = pool().calls.length);
      const summary = await produce({
        config,
        pipeline: 'docs',
        log: silentLogger(),
        count: false,
        progress: { tty: false, write: () => {} },
      });
      assert.ok(from >= 0, 'the producer connected');
      const calls = onPath(pool().since(from));
      assert.deepEqual(
        [summary.published, summary.recorded],
        [TASKS, TASKS],
        'every pending task published and recorded: the happy path ran',
      );
      assertCount(tally(calls), {
        statements: PRODUCER_STATEMENTS,
        roundTrips: PRODUCER_ROUND_TRIPS,
        kinds: PRODUCER_KINDS,
      });
      assert.equal(rowsOf(calls, 'INSERT sluice_dispatches'), TASKS, 'a dispatch row per task, in bulk statements');
      assert.deepEqual(
        kafka.sent.map((s) => s.messages.length),
        [TASKS],
        'one Kafka batch',
      );
    },
  );
});

describe('SQL statements per message: the fetcher', () => {
  const message = (k: number): Buffer =>
    Buffer.from(
      encodeEnvelope({ v: 1, pipeline: 'docs', key: k, payload: { k }, attempt: 1, runId: 'r', producedAt: '' }),
    );
  const batch = (values: Buffer[]) =>
    ({
      batch: {
        topic: 'sluice.docs',
        partition: 0,
        messages: values.map((value, i) => ({ offset: String(i), key: null, value })),
        offsetLag: () => '0',
      },
      resolveOffset: () => {},
      heartbeat: async () => {},
      isStale: () => false,
    }) as unknown as EachBatchPayload;

  /** A running fetcher (startFetcher, unchanged), its pool, and its consumer's batch handler. */
  async function fetcher(t: TestContext) {
    const config = configFor(tempDir(t, 'sluice-statements-'), { source: SOURCE, stages: [noop] });
    const { pool, kafka } = fakeServices(t);
    const handle = await startFetcher({ config, pipeline: 'docs', log: silentLogger(), fetcherId: 'f1' });
    onTeardown(t, () => handle.stop());
    const eachBatch = kafka.eachBatch;
    assert.ok(eachBatch !== null, 'the consumer runs');
    return { pool: pool(), eachBatch, stats: () => handle.stats() };
  }

  it(
    `spools a batch of ${TASKS} ` +
      `messages in ${FETCHER_GOOD_BATCH_STATEMENTS} ` +
      `statements and ${FETCHER_GOOD_BATCH_ROUND_TRIPS} round trips: the ` +
      `database is not on its path`,
    async (t) => {
      const f = await fetcher(t);
      const from = f.pool.calls.length;
      await f.eachBatch(batch(Array.from({ length: TASKS }, (_, i) => message(i + 1))));
      assert.equal(f.stats().spooled, TASKS, 'every message spooled: the happy path ran');
      assertCount(tally(onPath(f.pool.since(from))), {
        statements: FETCHER_GOOD_BATCH_STATEMENTS,
        roundTrips: FETCHER_GOOD_BATCH_ROUND_TRIPS,
        kinds: {},
      });
    },
  );

  it(
    `records the bad messages of a batch in ${FETCHER_BAD_BATCH_STATEMENTS} ` + `statement, however many there are`,
    async (t) => {
      const f = await fetcher(t);
      const from = f.pool.calls.length;
      const values = Array.from({ length: TASKS }, (_, i) =>
        i % 100 === 0 ? Buffer.from('not json') : message(i + 1),
      );
      await f.eachBatch(batch(values));
      assert.deepEqual([f.stats().spooled, f.stats().quarantined], [TASKS - 5, 5]);
      const calls = onPath(f.pool.since(from));
      assertCount(tally(calls), {
        statements: FETCHER_BAD_BATCH_STATEMENTS,
        roundTrips: FETCHER_BAD_BATCH_ROUND_TRIPS,
        kinds: { 'INSERT sluice_bad_messages': FETCHER_BAD_BATCH_STATEMENTS },
      });
      assert.equal(rowsOf(calls, 'INSERT sluice_bad_messages'), 5, 'a row per bad message, in one statement');
    },
  );
});

describe('the counting pool', () => {
  it(
    'counts each call as a round trip and each statement in it, BEGIN and ' +
      'COMMIT included, and answers in mysql2 shapes',
    async () => {
      const pool = new CountingPool((sql) => (sql.includes('FROM t') ? [{ a: 1 }] : undefined));
      const [rows] = await pool.query('SELECT a FROM t WHERE b = ?', [1]);
      const [header] = await pool.query('INSERT INTO t (a) VALUES ?', [[[1], [2], [3]]]);
      await pool.query("UPDATE t SET a = 'x;y'; DELETE FROM t WHERE a = 2; -- the end;\n");
      const conn = await pool.getConnection();
      await conn.beginTransaction();
      await conn.execute('SELECT 1');
      await conn.commit();
      conn.release();
      assert.deepEqual(rows, [{ a: 1 }]);
      assert.equal(
        (header as { affectedRows: number }).affectedRows,
        3,
        'a bulk insert is one statement of three rows',
      );
      assert.deepEqual(tally(pool.calls), {
        statements: 7,
        roundTrips: 6,
        byKind: { 'SELECT t': 1, 'INSERT t': 1, 'UPDATE t': 2, BEGIN: 1, SELECT: 1, COMMIT: 1 },
      });
    },
  );
});
