// The producer against the real MariaDB and Kafka: exactly the pending set is published, reruns reconcile,
// batches respect their byte limit, bad rows are reported and skipped, and a broker outage is reported.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { type Connection, type RowDataPacket } from 'mysql2/promise';
import { defaults, mergeLayers, type SluiceConfig, type SourceConfig } from '../../src/config/config.js';
import { validateConfig } from '../../src/config/validate.js';
import { KafkaError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { Shutdown } from '../../src/core/shutdown.js';
import { ENVELOPE_VERSION, type TaskEnvelope } from '../../src/core/envelope.js';
import { produce, type ProduceOptions } from '../../src/producer/producer.js';
import { ROOT, runCli } from '../helpers/cli.js';
import { randomName } from '../helpers/db.js';
import { fileDatabase } from '../helpers/fixtures.js';
import { BROKERS, ensureKafka, startPrivateBroker } from '../helpers/kafka.js';
import { countMessages, readAll } from '../helpers/topic.js';

const log = silentLogger();
let url: string;
let db: Connection;
before(() => ensureKafka());
fileDatabase({}, (d) => ({ url, db } = d));

interface Setup {
  config: SluiceConfig;
  pipeline: string;
  topic: string;
  run: (extra?: Partial<ProduceOptions>) => ReturnType<typeof produce>;
}

function setup(
  source: SourceConfig,
  producer: Partial<SluiceConfig['producer']> = {},
  brokers = BROKERS,
  kafka: Partial<SluiceConfig['kafka']> = {},
): Setup {
  const pipeline = randomName('p');
  const topic = randomName('sluice-test');
  const config = validateConfig(
    mergeLayers(structuredClone(defaults), {
      database: { url },
      kafka: { brokers, ...kafka },
      producer: { pageSize: 50, ...producer },
      pipelines: { [pipeline]: { topic, partitions: 3, source } },
    }),
  );
  return { config, pipeline, topic, run: (extra = {}) => produce({ config, pipeline, log, ...extra }) };
}

async function intSource(rows: number[], body = (id: number) => `body of ${id}`): Promise<string> {
  const table = randomName('docs');
  await db.query(`CREATE TABLE ${table} (id BIGINT PRIMARY KEY, title VARCHAR(100), body MEDIUMTEXT, seen DATETIME)`);
  if (rows.length > 0) {
    await db.query(`INSERT INTO ${table} (id, title, body, seen) VALUES ?`, [
      rows.map((id) => [id, `title ${id}`, body(id), '2026-01-02 03:04:05']),
    ]);
  }
  return table;
}

async function markDone(pipeline: string, keys: Array<string | number>): Promise<void> {
  if (keys.length === 0) return;
  await db.query('INSERT INTO sluice_results (pipeline, task_key, started_at, finished_at, duration_ms) VALUES ?', [
    keys.map((k) => [pipeline, Buffer.from(String(k), 'utf8'), new Date(), new Date(), 1]),
  ]);
}

async function dispatched(pipeline: string): Promise<Map<string, RowDataPacket>> {
  const [rows] = await db.query<RowDataPacket[]>('SELECT * FROM sluice_dispatches WHERE pipeline = ?', [pipeline]);
  return new Map(rows.map((r) => [Buffer.from(r.task_key as Buffer).toString('utf8'), r]));
}

const envelopes = async (topic: string): Promise<TaskEnvelope[]> =>
  (await readAll(topic)).map((m) => JSON.parse(m.value) as TaskEnvelope);

describe('produce', () => {
  it('publishes exactly the integer keys without a result, gaps and all, as documented envelopes', async () => {
    const ids = Array.from({ length: 300 }, (_, i) => i * 7 + 3);
    const table = await intSource(ids);
    const s = setup({ table, key: 'id', columns: ['title', 'body', 'seen'] });
    const done = ids.filter((id) => id % 3 === 0);
    await markDone(s.pipeline, done);
    const want = ids.filter((id) => id % 3 !== 0);

    const summary = await s.run();
    assert.equal(summary.published, want.length);
    assert.equal(summary.recorded, want.length);
    const c = summary.counts!;
    assert.deepEqual(
      { missing: c.missing, inFlight: c.inFlight, quarantined: c.quarantined, pending: c.pending },
      { missing: want.length, inFlight: 0, quarantined: 0, pending: want.length },
    );

    const messages = await readAll(s.topic);
    assert.deepEqual(messages.map((m) => m.key).sort(), want.map(String).sort());
    const [[ledger]] = await db.query<RowDataPacket[]>('SELECT id FROM sluice_ledger');
    for (const m of messages) {
      const e = JSON.parse(m.value) as TaskEnvelope;
      assert.deepEqual(Object.keys(e).sort(), [
        'attempt',
        'key',
        'ledger',
        'payload',
        'pipeline',
        'producedAt',
        'runId',
        'v',
      ]);
      assert.equal(e.ledger, String(ledger!.id), "the message carries its ledger's id");
      assert.equal(e.v, ENVELOPE_VERSION);
      assert.equal(e.pipeline, s.pipeline);
      assert.equal(e.key, Number(m.key), 'integer keys travel as numbers');
      assert.deepEqual(e.payload, { title: `title ${e.key}`, body: `body of ${e.key}`, seen: '2026-01-02 03:04:05' });
      assert.equal(e.attempt, 1);
      assert.equal(e.runId, summary.runId);
      assert.ok(!Number.isNaN(Date.parse(e.producedAt)));
    }
    const d = await dispatched(s.pipeline);
    assert.deepEqual([...d.keys()].sort(), want.map(String).sort());
    const at = new Map(messages.map((m) => [`${m.partition}:${m.offset}`, m.key]));
    for (const [key, row] of d) {
      assert.equal(row.run_id, summary.runId);
      assert.equal(row.topic, s.topic);
      assert.equal(
        at.get(`${row.kafka_partition}:${row.kafka_offset}`),
        key,
        'recorded at the partition and offset Kafka acknowledged',
      );
    }
  });

  it('publishes hostile string keys byte for byte and never mixes them up', async () => {
    const table = randomName('skeys');
    await db.query(
      `CREATE TABLE ${table} (k VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci PRIMARY KEY, v INT)`,
    );
    const keys = [
      "it's",
      '"double"',
      '../../etc/passwd',
      'a/b\\c',
      'with space',
      'Ünïcødé ✓',
      '日本語のキー',
      '🦀🚀',
      'x'.repeat(512),
      'new\nline',
      'tab\there',
      'nul\u0000byte',
      'emoji-at-end 🙂',
    ];
    await db.query(`INSERT INTO ${table} (k, v) VALUES ?`, [keys.map((k, i) => [k, i])]);
    const s = setup({ table, key: 'k', columns: ['v'] });
    const done = [keys[0]!, keys[6]!, keys[8]!];
    await markDone(s.pipeline, done);
    const want = keys.filter((k) => !done.includes(k));

    const summary = await s.run();
    assert.equal(summary.published, want.length);
    const messages = await readAll(s.topic);
    assert.deepEqual(messages.map((m) => m.key).sort(), [...want].sort());
    for (const m of messages) {
      const e = JSON.parse(m.value) as TaskEnvelope;
      assert.equal(e.key, m.key);
      assert.deepEqual(e.payload, { v: keys.indexOf(m.key) });
    }
    assert.deepEqual([...(await dispatched(s.pipeline)).keys()].sort(), [...want].sort());
  });

  it('reports an empty-string key with its row and never publishes it; keys after it are all published', async () => {
    const table = randomName('ekeys');
    await db.query(`CREATE TABLE ${table} (k VARCHAR(20) PRIMARY KEY, v INT)`);
    await db.query(`INSERT INTO ${table} VALUES ('', 0), ('a', 1), ('b', 2), ('null', 3), ('z', 4)`);
    const s = setup({ table, key: 'k', columns: ['v'] }, { pageSize: 2 });
    const summary = await s.run();
    assert.deepEqual(summary.skipped, { tooLarge: 0, unserialisable: 0, emptyKey: 1 });
    assert.match(summary.skippedTasks[0]!.reason, /^key is empty: row \{"v":0\}$/);
    assert.deepEqual((await readAll(s.topic)).map((m) => m.key).sort(), ['a', 'b', 'null', 'z']);
    assert.equal((await dispatched(s.pipeline)).has(''), false);
  });

  it('a ZEROFILL key: the rerun after every task is done publishes nothing (one key text on both sides)', async () => {
    const table = randomName('zf');
    await db.query(`CREATE TABLE ${table} (id INT(8) UNSIGNED ZEROFILL PRIMARY KEY)`);
    await db.query(`INSERT INTO ${table} VALUES (1), (20), (300)`);
    const s = setup({ table, key: 'id', columns: [] });
    const first = await s.run();
    assert.deepEqual(
      (await envelopes(s.topic)).map((e) => e.key).sort((a, b) => Number(a) - Number(b)),
      [1, 20, 300],
    );
    assert.equal(first.published, 3);
    await markDone(s.pipeline, [1, 20, 300]);
    const rerun = await s.run({ all: true, dryRun: true });
    assert.deepEqual([rerun.counts?.done, rerun.counts?.pending], [3, 0]);
    assert.equal((await s.run({ all: true })).published, 0);
  });

  it(
    '--retry-quarantined takes a task out of quarantine and resets its ' + 'attempt budget; its history stays',
    async () => {
      const s = setup({ table: await intSource([1, 2]), key: 'id', columns: [] });
      await db.query(
        'INSERT INTO sluice_dead_tasks (pipeline, task_key, error_class, ' +
          'error_message, attempts) VALUES (?, ?, ?, ?, ?)',
        [s.pipeline, '2', 'E', 'm', 3],
      );
      await db.query(
        'INSERT INTO sluice_attempts (pipeline, task_key, stage, attempt, ' +
          'error_class, error_message, retriable) VALUES ?',
        [[1, 2, 3].map((a) => [s.pipeline, '2', 'st', a, 'E', 'm', 1])],
      );
      const summary = await s.run({ retryQuarantined: true });
      const [[dead]] = await db.query<RowDataPacket[]>(
        'SELECT COUNT(*) AS n FROM sluice_dead_tasks WHERE pipeline = ?',
        [s.pipeline],
      );
      const [[live]] = await db.query<RowDataPacket[]>(
        'SELECT COUNT(*) AS n FROM sluice_attempts WHERE pipeline = ? AND superseded = FALSE',
        [s.pipeline],
      );
      assert.equal(summary.requeuedQuarantined, 1);
      assert.deepEqual([Number(dead?.n), Number(live?.n)], [0, 0]);
      assert.deepEqual((await readAll(s.topic)).map((m) => m.key).sort(), ['1', '2']);
    },
  );

  it('a rerun with nothing missing publishes nothing', async () => {
    const ids = Array.from({ length: 120 }, (_, i) => i + 1);
    const s = setup({ table: await intSource(ids), key: 'id', columns: ['title'] });
    await markDone(s.pipeline, ids);
    const summary = await s.run();
    assert.equal(summary.published, 0);
    assert.equal(summary.counts?.missing, 0);
    assert.equal(await countMessages(s.topic), 0);
  });

  it('a rerun while tasks are in flight publishes nothing, unless they are stale or --all', async () => {
    const ids = Array.from({ length: 200 }, (_, i) => i + 1);
    const s = setup({ table: await intSource(ids), key: 'id', columns: ['title'] });
    assert.equal((await s.run()).published, 200);

    const rerun = await s.run();
    assert.equal(rerun.published, 0);
    const rc = rerun.counts!;
    assert.deepEqual(
      { missing: rc.missing, inFlight: rc.inFlight, quarantined: rc.quarantined, pending: rc.pending },
      { missing: 200, inFlight: 200, quarantined: 0, pending: 0 },
    );

    await markDone(s.pipeline, ids.slice(0, 50));
    const stale = await s.run({ staleAfterMs: 0 });
    assert.equal(stale.published, 150, 'stale in-flight tasks are published again, finished ones are not');
    const all = await s.run({ all: true });
    assert.equal(all.published, 150);
    assert.equal(await countMessages(s.topic), 500);
    const attempts = (await envelopes(s.topic)).filter((e) => e.runId === all.runId).map((e) => e.attempt);
    assert.deepEqual([...new Set(attempts)], [3], 'each republication counts as another attempt');
    const d = await dispatched(s.pipeline);
    assert.equal(d.get('51')?.dispatches, 3);
    assert.equal(d.get('1')?.dispatches, 1);
  });

  it('republishes quarantined tasks only with --retry-quarantined, and takes them out of quarantine', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => i + 1);
    const s = setup({ table: await intSource(ids), key: 'id', columns: ['title'] });
    const dead = [5, 6, 7];
    await db.query(
      'INSERT INTO sluice_dead_tasks (pipeline, task_key, stage, error_class, error_message, attempts) VALUES ?',
      [dead.map((k) => [s.pipeline, Buffer.from(String(k)), 'ner', 'Error', 'boom', 3])],
    );
    const first = await s.run();
    assert.equal(first.published, 37);
    assert.equal(first.counts?.quarantined, 3);
    assert.equal(first.counts?.dead, 3, 'dead: the earlier name, kept');
    // Two of the tasks just published fail for good at once: quarantined, not in flight, however recent.
    await db.query(
      'INSERT INTO sluice_dead_tasks (pipeline, task_key, stage, error_class, error_message, attempts) VALUES ?',
      [[10, 11].map((k) => [s.pipeline, Buffer.from(String(k)), 'ner', 'Error', 'boom', 3])],
    );
    // retryDead: the option's earlier name, still accepted.
    const retry = await s.run({ retryDead: true });
    assert.equal(retry.published, 5);
    assert.deepEqual([retry.requeuedQuarantined, retry.requeuedDead], [5, 5]);
    const retried = (await envelopes(s.topic)).filter((e) => e.runId === retry.runId).map((e) => e.key);
    assert.deepEqual(
      retried.sort((a, b) => Number(a) - Number(b)),
      [...dead, 10, 11],
    );
    const [left] = await db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sluice_dead_tasks WHERE pipeline = ?', [
      s.pipeline,
    ]);
    assert.equal(Number(left[0]?.n), 0);
  });

  it('never sends a batch over the byte limit, and still sends everything', async () => {
    const ids = Array.from({ length: 400 }, (_, i) => i + 1);
    const s = setup(
      { table: await intSource(ids, (id) => 'x'.repeat(100 + (id % 50))), key: 'id', columns: ['body'] },
      { batchBytes: 4096 },
    );
    const batches: number[] = [];
    const summary = await s.run({ onBatch: (b) => batches.push(b.bytes) });
    assert.equal(summary.published, 400);
    assert.ok(batches.length >= 10, `${batches.length} batches`);
    for (const b of batches) assert.ok(b <= 4096, `batch of ${b} bytes`);
    assert.equal(
      batches.reduce((a, b) => a + b, 0) > 4096 * (batches.length - 1) * 0.8,
      true,
      'batches are filled, not sent one message at a time',
    );
    assert.equal(await countMessages(s.topic), 400);
  });

  it(
    'reports and skips a message over the size limit and a payload that ' + 'cannot be serialised; the rest goes on',
    async () => {
      const ids = Array.from({ length: 30 }, (_, i) => i + 1);
      const table = await intSource(ids, (id) => (id === 7 ? 'y'.repeat(6000) : 'small'));
      await db.query(`UPDATE ${table} SET title = 'poison' WHERE id = 13`);
      // JSON cannot represent a BigInt: the payload function makes one for the poisoned row.
      const payload = (row: Record<string, unknown>): unknown =>
        row.title === 'poison' ? { n: 10n } : { body: row.body };
      const s = setup({ table, key: 'id', columns: ['body', 'title'], payload }, { batchBytes: 4096 });

      const summary = await s.run();
      assert.equal(summary.published, 28);
      assert.deepEqual(summary.skipped, { tooLarge: 1, unserialisable: 1, emptyKey: 0 });
      assert.deepEqual(summary.skippedTasks.map((t) => t.key).sort(), ['13', '7']);
      assert.match(summary.skippedTasks.find((t) => t.key === '7')!.reason, /message is \d+ bytes; the limit is 4096/);
      assert.match(summary.skippedTasks.find((t) => t.key === '13')!.reason, /payload cannot be serialised: .*BigInt/);
      assert.equal(await countMessages(s.topic), 28);
      assert.equal((await dispatched(s.pipeline)).has('7'), false, 'a skipped task is not recorded as in flight');
    },
  );

  it('Ctrl-C stops after the batch in hand and reports what was published and recorded', async () => {
    const ids = Array.from({ length: 1000 }, (_, i) => i + 1);
    const s = setup({ table: await intSource(ids), key: 'id', columns: ['title'] }, { batchBytes: 4096 });
    const shutdown = new Shutdown();
    let batches = 0;
    const summary = await s.run({ shutdown, onBatch: () => ++batches === 2 && shutdown.requestStop('SIGINT') });
    assert.equal(summary.interrupted, true);
    assert.ok(summary.published > 0 && summary.published < 1000, `published ${summary.published}`);
    assert.equal(summary.recorded, summary.published);
    assert.equal((await dispatched(s.pipeline)).size, summary.published);
    assert.equal(await countMessages(s.topic), summary.published);
    const rest = await s.run();
    assert.equal(rest.published, 1000 - summary.published, 'the next run publishes the rest');
  });

  it('a dry run counts and publishes nothing', async () => {
    const s = setup({ table: await intSource([1, 2, 3]), key: 'id', columns: [] });
    const summary = await s.run({ dryRun: true });
    const { countedAt, countAgeSeconds, stages: _stages, ...counts } = summary.counts!;
    assert.deepEqual(counts, {
      source: 3,
      done: 0,
      missing: 3,
      inFlight: 0,
      quarantined: 0,
      dead: 0,
      pending: 3,
      orphans: 0,
      shared: 0,
      exact: true,
    });
    assert.match(countedAt, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/);
    assert.equal(countAgeSeconds, 0);
    assert.equal(summary.published, 0);
    assert.equal((await dispatched(s.pipeline)).size, 0);
  });

  it('--limit publishes at most that many', async () => {
    const s = setup({ table: await intSource(Array.from({ length: 100 }, (_, i) => i + 1)), key: 'id', columns: [] });
    assert.equal((await s.run({ limit: 30 })).published, 30);
    assert.equal((await s.run()).published, 70);
  });

  it('a broker that dies mid-run: fails with the documented error, saying how many were published', async () => {
    const broker = await startPrivateBroker();
    try {
      const ids = Array.from({ length: 2000 }, (_, i) => i + 1);
      const s = setup(
        { table: await intSource(ids), key: 'id', columns: ['title'] },
        { batchBytes: 4096 },
        broker.brokers,
        { retries: 1, requestTimeoutMs: 3000, connectionTimeoutMs: 1000 },
      );
      let batches = 0;
      const started = performance.now();
      await assert.rejects(s.run({ onBatch: () => ++batches === 3 && broker.kill() }), (err: unknown) => {
        assert.ok(err instanceof KafkaError, String(err));
        assert.equal(err.code, 'KAFKA_PUBLISH_FAILED');
        assert.match(
          err.message,
          new RegExp(
            `^publishing to ${s.topic} failed after retries \\(.*\\); \\d+ task\\(s\\) were published and \\d+ ` +
              `recorded before the failure$`,
          ),
        );
        assert.match(err.hint ?? '', /rerun: npx sluice produce --pipeline/);
        return true;
      });
      assert.ok(performance.now() - started < 60_000);
      const recorded = (await dispatched(s.pipeline)).size;
      assert.ok(recorded >= 3 * 10, `recorded ${recorded}`);
    } finally {
      await broker.stop();
    }
  });
});

describe('npm run produce', () => {
  it('exits 5 and lists the skipped keys when a task was skipped; 2 without --pipeline', async (t) => {
    const table = await intSource([1, 2, 3], (id) => (id === 2 ? 'z'.repeat(3000) : 'ok'));
    const dir = mkdtempSync(join(tmpdir(), 'sluice-produce-cli-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const topic = randomName('sluice-test');
    // A pipeline name of its own: its default consumer group is claimed by whichever test database used it first.
    const cli = randomName('cli');
    writeFileSync(
      join(dir, 'sluice.config.ts'),
      `export default { pipelines: { ${cli}: { topic: '${topic}', partitions: ` +
        `1, source: { table: '${table}', key: 'id', columns: ['body'] } } } };\n`,
    );
    const env = {
      DATABASE_URL: url,
      SLUICE_KAFKA_BROKERS: BROKERS.join(','),
      SLUICE_LOG_LEVEL: 'silent',
      SLUICE_CONFIG: join(dir, 'sluice.config.ts'),
    };
    const r = await runCli(['produce', '--pipeline', cli, '--batch-bytes', '2048'], { env, cwd: ROOT });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stdout, /published +2/);
    assert.match(r.stdout, /SKIPPED +1 +\(too large 1, unserialisable 0, empty key 0\)/);
    assert.match(r.stdout, /key "2": message is \d+ bytes; the limit is 2048/);
    const again = await runCli(['produce', '--pipeline', cli, '--json'], { env, cwd: ROOT });
    assert.equal(again.code, 0, again.stderr);
    const summary = JSON.parse(again.stdout) as { published: number; counts: { inFlight: number } };
    assert.equal(summary.published, 1, 'with the default 1 MiB limit the large task goes through');
    assert.equal(summary.counts.inFlight, 2);
    const usage = await runCli(['produce'], { env, cwd: ROOT });
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^sluice: --pipeline is required/);
  });
});
