// The fetcher against the real Kafka broker and real files: every offset lands in the spool, offsets are
// committed only behind durable items, backpressure pauses and resumes, bad messages are quarantined,
// hostile keys stay out of file names, and two fetchers in one group share the work.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { defaults, mergeLayers, type SluiceConfig } from '../../src/config/config.js';
import { validateConfig } from '../../src/config/validate.js';
import { silentLogger } from '../../src/core/logger.js';
import { migrate } from '../../src/db/migrate.js';
import { startFetcher, type FetcherHandle } from '../../src/fetcher/fetcher.js';
import { SpoolClaimer } from '../../src/spool/claim.js';
import { tempDir as makeTempDir, spawnCli, fileTeardown } from '../helpers/fixtures.js';
import { dbConfig, randomName, testDatabase, createIntSource } from '../helpers/db.js';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/core/logger.js';
import { KafkaError } from '../../src/core/errors.js';
import { BROKERS, closedPort, ensureKafka, startPrivateBroker } from '../helpers/kafka.js';
import {
  committedOffsets,
  createTopic,
  envelope,
  highWatermarks,
  offsetKey,
  publishRaw,
  spooledItems,
  tasks,
  waitFor,
} from '../helpers/spool.js';

const log = silentLogger();
let url: string;
const fetchers: FetcherHandle[] = [];

let deadDbPort = 0;
before(async () => {
  await ensureKafka();
  deadDbPort = await closedPort();
  url = await testDatabase(file);
  await migrate(dbConfig(url), log);
  const conn = await mysql.createConnection(url);
  await createIntSource(conn, 'unused', 100_000);
  await conn.end();
});
after(async () => {
  for (const f of fetchers) await f.stop();
});
const file = fileTeardown();

interface Setup {
  pipeline: string;
  topic: string;
  groupId: string;
  config: (spoolDir?: string) => SluiceConfig;
  start: (spoolDir?: string, logger?: typeof log) => Promise<FetcherHandle>;
  spoolDir: string;
}

/** A folder removed when the file's tests are over. */
const tempDir = (prefix: string): string => makeTempDir(file, prefix);

async function setup(
  partitions: number,
  overrides: Record<string, unknown> = {},
  brokers = BROKERS,
  create = true,
): Promise<Setup> {
  const pipeline = randomName('f');
  const topic = randomName('sluice-fetch');
  const groupId = randomName('sluice-group');
  const spoolDir = tempDir('sluice-spool-');
  if (create) await createTopic(topic, partitions, brokers);
  const config = (dir = spoolDir): SluiceConfig =>
    validateConfig(
      mergeLayers(structuredClone(defaults), {
        database: { url },
        kafka: { brokers, ...((overrides.kafka as object) ?? {}) },
        fetcher: { groupId, statsIntervalMs: 60_000, ...((overrides.fetcher as object) ?? {}) },
        spool: { dir, ...((overrides.spool as object) ?? {}) },
        pipelines: { [pipeline]: { topic, partitions, source: { table: 'unused', key: 'id', columns: [] } } },
      }),
    );
  const start = async (dir = spoolDir, logger = log): Promise<FetcherHandle> => {
    const f = await startFetcher({ config: config(dir), pipeline, log: logger });
    fetchers.push(f);
    return f;
  };
  return { pipeline, topic, groupId, config, start, spoolDir };
}

async function describeGroup(groupId: string): Promise<{ members: number; state: string }> {
  const { Kafka, logLevel } = await import('kafkajs');
  const admin = new Kafka({ clientId: 'sluice-test', brokers: BROKERS, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const { groups } = await admin.describeGroups([groupId]);
    return { members: groups[0]?.members.length ?? 0, state: groups[0]?.state ?? 'Unknown' };
  } finally {
    await admin.disconnect();
  }
}
const groupMembers = async (g: string): Promise<number> => (await describeGroup(g)).members;
const groupState = async (g: string): Promise<string> => (await describeGroup(g)).state;

describe('fetch', () => {
  it('spools every offset exactly once and commits up to the high watermark', async () => {
    const s = await setup(3);
    await publishRaw(s.topic, tasks(s.pipeline, 3000));
    const f = await s.start();
    await waitFor('3000 spooled', () => f.stats().spooled >= 3000);
    await f.stop();
    const items = spooledItems(f.paths.root);
    const keys = items.map(offsetKey);
    assert.equal(keys.length, 3000);
    assert.equal(new Set(keys).size, 3000, 'no offset twice');
    assert.deepEqual(new Set(items.map((i) => i.task.key)), new Set(Array.from({ length: 3000 }, (_, i) => i + 1)));
    assert.deepEqual(await committedOffsets(s.groupId, s.topic), await highWatermarks(s.topic));
    for (const i of items) assert.equal(i.task.pipeline, s.pipeline);
  });

  it('pauses above the high-water mark and resumes below the low-water mark', async () => {
    const s = await setup(2, {
      spool: { highWaterItems: 200, lowWaterItems: 100, maxSegmentItems: 50 },
      fetcher: { maxBytesPerPartition: 8192 },
    });
    await publishRaw(s.topic, tasks(s.pipeline, 1500));
    const f = await s.start();
    await waitFor('paused', () => f.stats().paused);
    // Batches kafkajs fetched before the pause still arrive; after that, nothing more while paused.
    await new Promise((r) => setTimeout(r, 1000));
    const held = f.stats().spooled;
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(f.stats().paused);
    assert.equal(f.stats().spooled, held, 'no fetching while paused');
    assert.ok(held < 1500, `spooled ${held} of 1500 while paused`);
    // Workers drain the spool: fetching resumes, and everything arrives in the end.
    const worker = new SpoolClaimer(f.paths, 'test-worker', 60_000);
    let drained = 0;
    let resumed = false;
    await waitFor('all 1500 through the spool', async () => {
      if (!f.stats().paused) resumed = true;
      for (let c = await worker.claim(); c !== null; c = await worker.claim()) {
        drained += (await worker.read(c)).length;
        await worker.complete(c);
      }
      return drained >= 1500;
    });
    assert.ok(resumed);
    assert.equal(drained, 1500);
  });

  it('quarantines each kind of bad message with its reason, commits past it, and spools the rest', async () => {
    const s = await setup(1, { spool: { maxItemBytes: 2048 } });
    const good = tasks(s.pipeline, 5);
    await publishRaw(s.topic, [
      good[0]!,
      { key: 'nj', value: 'this is not json' },
      good[1]!,
      { key: 'bin', value: Buffer.from([0xff, 0xfe, 0x00, 0x81, 0xc3]) },
      { key: 'empty', value: null },
      { key: 'zero', value: Buffer.alloc(0) },
      { key: 'v9', value: JSON.stringify({ v: 9, pipeline: s.pipeline, key: 1, payload: {}, attempt: 1 }) },
      { key: 'other', value: envelope('another-pipeline', 7) },
      { key: 'big', value: envelope(s.pipeline, 'big', 'x'.repeat(5000)) },
      { key: 'arr', value: '[1,2,3]' },
      { key: 'nokey', value: JSON.stringify({ v: 1, pipeline: s.pipeline, payload: {}, attempt: 1 }) },
      good[2]!,
      good[3]!,
      good[4]!,
    ]);
    const f = await s.start();
    await waitFor('14 handled', () => f.stats().spooled + f.stats().quarantined >= 14);
    await f.stop();
    assert.equal(f.stats().spooled, 5);
    assert.deepEqual(
      spooledItems(f.paths.root)
        .map((i) => i.task.key)
        .sort(),
      [1, 2, 3, 4, 5],
    );
    const entries = readdirSync(f.paths.quarantine).map(
      (n) =>
        JSON.parse(readFileSync(join(f.paths.quarantine, n), 'utf8')) as {
          reason: string;
          offset: string;
          partition: number;
          key: string | null;
        },
    );
    const byKey = Object.fromEntries(entries.map((e) => [Buffer.from(e.key ?? '', 'base64').toString(), e.reason]));
    assert.deepEqual(byKey, {
      nj: 'not-json',
      bin: 'binary',
      empty: 'empty',
      zero: 'empty',
      v9: 'unknown-version',
      other: 'other-pipeline',
      big: 'too-large',
      arr: 'bad-envelope',
      nokey: 'bad-envelope',
    });
    for (const e of entries) assert.equal(e.partition, 0);
    assert.deepEqual(await committedOffsets(s.groupId, s.topic), await highWatermarks(s.topic));
    const conn = await mysql.createConnection(url);
    try {
      await waitFor(
        'bad messages recorded',
        async () => {
          const [rows] = await conn.query<RowDataPacket[]>(
            'SELECT COUNT(*) AS n FROM sluice_bad_messages WHERE pipeline = ?',
            [s.pipeline],
          );
          return Number(rows[0]?.n) === 9;
        },
        10_000,
      );
      const [rows] = await conn.query<RowDataPacket[]>(
        'SELECT reason, kafka_offset, spool_file FROM sluice_bad_messages WHERE pipeline = ? ORDER BY kafka_offset',
        [s.pipeline],
      );
      assert.deepEqual(
        rows.map((r) => String(r.reason)),
        [
          'not-json',
          'binary',
          'empty',
          'empty',
          'unknown-version',
          'other-pipeline',
          'too-large',
          'bad-envelope',
          'bad-envelope',
        ],
      );
      assert.equal(String(rows[0]?.kafka_offset), '1');
      for (const r of rows) assert.ok(readdirSync(f.paths.quarantine).includes(String(r.spool_file)));
    } finally {
      await conn.end();
    }
  });

  it('keeps hostile keys out of file names: nothing is written outside the spool folder', async () => {
    const s = await setup(1);
    const hostile = [
      '../../../../tmp/escaped',
      '/etc/passwd',
      'a\u0000b',
      '..',
      '.',
      'C:\\windows',
      'x'.repeat(2000),
      'ü/ö/ä',
    ];
    await publishRaw(
      s.topic,
      hostile.map((k) => ({ key: k, value: envelope(s.pipeline, k) })),
    );
    const f = await s.start();
    await waitFor('all spooled', () => f.stats().spooled >= hostile.length);
    await f.stop();
    assert.deepEqual(
      spooledItems(f.paths.root)
        .map((i) => i.task.key)
        .sort(),
      [...hostile].sort(),
    );
    const walk = (d: string): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)],
      );
    const files = walk(s.spoolDir).map((p) => relative(s.spoolDir, p));
    for (const p of files) {
      assert.ok(!p.startsWith('..'), p);
      // Segments and quarantine entries, and the spool's one file of its own: the ledger it fetches for.
      assert.match(p, /^[a-z0-9_]+\/((ready|claimed|quarantine|tmp)\/[0-9a-z~.-]+|ledger)$/, p);
    }
    assert.ok(!readdirSync(tmpdir()).includes('escaped'));
  });

  it(
    'two fetchers in one group on two spool folders (two machines) split the ' + 'partitions and cover every message',
    async () => {
      const s = await setup(4, { fetcher: { maxBytesPerPartition: 16_384 } });
      const a = await s.start(tempDir('sluice-machine-a-'));
      const b = await s.start(tempDir('sluice-machine-b-'));
      await waitFor(
        'both fetchers in the group',
        async () => (await groupMembers(s.groupId)) === 2 && (await groupState(s.groupId)) === 'Stable',
      );
      await publishRaw(s.topic, tasks(s.pipeline, 4000));
      await waitFor('every offset in one of the spools', () => {
        const all = new Set([...spooledItems(a.paths.root), ...spooledItems(b.paths.root)].map(offsetKey));
        return all.size >= 4000;
      });
      await Promise.all([a.stop(), b.stop()]);
      const inA = spooledItems(a.paths.root);
      const inB = spooledItems(b.paths.root);
      assert.equal(new Set([...inA, ...inB].map(offsetKey)).size, 4000);
      assert.ok(inA.length > 0 && inB.length > 0, `split: ${inA.length} / ${inB.length}`);
      assert.deepEqual(await committedOffsets(s.groupId, s.topic), await highWatermarks(s.topic));
    },
  );
});

describe('fetch: group life and visibility', () => {
  it('creates a missing topic with the pipeline partition count', async () => {
    const s = await setup(5, {}, BROKERS, false);
    const f = await s.start();
    await publishRaw(s.topic, tasks(s.pipeline, 50));
    await waitFor('50 spooled', () => f.stats().spooled >= 50);
    await f.stop();
    assert.equal((await highWatermarks(s.topic)).size, 5);
  });

  it('logs a periodic fetch stats line: items/s, spool depth, lag per partition, paused', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (c, _e, done) => (lines.push(String(c)), done()) });
    const logger = createLogger({ level: 'info', pretty: false, isTTY: false, destination: sink });
    const s = await setup(2, { fetcher: { statsIntervalMs: 200 } });
    await publishRaw(s.topic, tasks(s.pipeline, 100));
    const f = await s.start(undefined, logger);
    await waitFor('a stats line after the items', () =>
      lines.some((l) => l.includes('"msg":"fetch stats"') && l.includes('"spooled":100')),
    );
    await f.stop();
    const stat = JSON.parse(
      lines.find((l) => l.includes('"msg":"fetch stats"') && l.includes('"spooled":100'))!,
    ) as Record<string, unknown>;
    assert.equal(stat.component, 'fetcher');
    assert.equal(typeof stat.itemsPerSec, 'number');
    assert.equal(stat.depthItems, 100);
    assert.equal(stat.paused, false);
    assert.deepEqual(Object.keys(stat.lag as object).sort(), ['0', '1']);
  });

  it(
    'says so, once, when it holds no partition because another group member ' + 'subscribes to another topic',
    async (t) => {
      const lines: string[] = [];
      const sink = new Writable({ write: (c, _e, done) => (lines.push(String(c)), done()) });
      const logger = createLogger({ level: 'info', pretty: false, isTTY: false, destination: sink });
      const s = await setup(2, { fetcher: { sessionTimeoutMs: 6000 } });
      await publishRaw(s.topic, tasks(s.pipeline, 40));
      // A consumer of another topic in the same group, there first: kafkajs's leader assigns only its own topics.
      const otherTopic = randomName('other-topic');
      await createTopic(otherTopic, 1);
      const { Kafka, logLevel } = await import('kafkajs');
      const intruder = new Kafka({ clientId: 'intruder-app', brokers: BROKERS, logLevel: logLevel.NOTHING }).consumer({
        groupId: s.groupId,
        sessionTimeout: 6000,
      });
      await intruder.connect();
      t.after(() => intruder.disconnect());
      await intruder.subscribe({ topic: otherTopic });
      let intruderJoined = false;
      intruder.on(intruder.events.GROUP_JOIN, () => (intruderJoined = true));
      await intruder.run({ eachMessage: async () => {} });
      await waitFor('the other consumer leads the group', () => intruderJoined);

      const f = await s.start(undefined, logger);
      const warned = () => lines.filter((l) => l.includes('fetcher holds no partition'));
      await waitFor('the warning', () => warned().length > 0, 40_000);
      assert.equal(f.stats().spooled, 0, 'nothing fetched: the fetcher really held no partition');
      const record = JSON.parse(warned()[0]!) as {
        level: number;
        topic: string;
        groupId: string;
        lag: number;
        members: Array<{ clientId: string; topics: string[] }>;
      };
      assert.equal(record.level, 40);
      assert.deepEqual([record.topic, record.groupId, record.lag], [s.topic, s.groupId, 40]);
      assert.deepEqual(
        record.members.map((m) => [m.clientId, m.topics]),
        [['intruder-app', [otherTopic]]],
      );
      const idle = f.stats().idle;
      assert.ok(idle !== null && idle !== undefined, 'the heartbeat reports it');
      assert.equal(idle.lag, 40);
      assert.equal(idle.members[0]?.clientId, 'intruder-app');
      // Said once, not on every check.
      await new Promise((r) => setTimeout(r, 5000));
      assert.equal(warned().length, 1);

      // The other member leaves: the fetcher gets the partitions, fetches, and the report clears.
      await intruder.disconnect();
      await waitFor('40 spooled once the group is its own', () => f.stats().spooled >= 40, 40_000);
      assert.equal(f.stats().idle, null);
      await f.stop();
    },
  );

  it(
    'started while the database is down, knows its ledger from its spool; a ' +
      'spool that never saw one waits for the database',
    async () => {
      const s = await setup(1);
      const first = await s.start();
      await first.stop();
      const ledger = readFileSync(join(first.paths.root, 'ledger'), 'utf8').trim();
      assert.match(ledger, /^[0-9a-f-]{36}$/, 'the spool keeps the ledger id');

      const down = (dir?: string): SluiceConfig => ({
        ...s.config(dir),
        database: { ...s.config(dir).database, url: `mysql://root@127.0.0.1:${deadDbPort}/none` },
      });
      const f = await startFetcher({ config: down(), pipeline: s.pipeline, log });
      fetchers.push(f);
      const foreign = JSON.stringify({
        ...JSON.parse(envelope(s.pipeline, 1)),
        ledger: '0b5e7a40-1111-4222-8333-444455556666',
      });
      await publishRaw(s.topic, [
        { key: '1', value: foreign },
        { key: '2', value: envelope(s.pipeline, 2) },
        { key: '3', value: JSON.stringify({ ...JSON.parse(envelope(s.pipeline, 3)), ledger }) },
      ]);
      await waitFor('three handled', () => f.stats().spooled + f.stats().quarantined >= 3, 30_000);
      assert.deepEqual(
        [f.stats().spooled, f.stats().quarantined],
        [2, 1],
        "another ledger's message is quarantined even without the database",
      );
      await f.stop();

      await assert.rejects(
        startFetcher({ config: down(tempDir('sluice-spool-')), pipeline: s.pipeline, log }),
        (err: Error & { code?: string; retriable?: boolean }) => {
          assert.equal(err.code, 'DB_UNREACHABLE');
          assert.equal(err.retriable, true);
          assert.match(
            err.message,
            /this spool has not fetched for a ledger yet, so the fetcher waits for the database/,
          );
          return true;
        },
      );
    },
  );

  it(
    'rides out a broker restart (restarting with backoff), and fails with a ' +
      'clear error when the broker stays away',
    async () => {
      const broker = await startPrivateBroker();
      try {
        const kafka = { retries: 2, connectionTimeoutMs: 1000, requestTimeoutMs: 5000 };
        const s = await setup(
          2,
          { kafka, fetcher: { sessionTimeoutMs: 6000, maxRestarts: 10, restartBackoffMs: 500 } },
          broker.brokers,
        );
        await publishRaw(s.topic, tasks(s.pipeline, 100), broker.brokers);
        const f = await s.start();
        await waitFor('first 100', () => f.stats().spooled >= 100);
        broker.kill();
        await new Promise((r) => setTimeout(r, 2000));
        await broker.restart();
        await publishRaw(
          s.topic,
          tasks(s.pipeline, 100).map((m, i) => ({ ...m, value: envelope(s.pipeline, 1000 + i) })),
          broker.brokers,
        );
        await waitFor(
          'the next 100 after the restart',
          () => new Set(spooledItems(f.paths.root).map((i) => i.task.key)).size >= 200,
          90_000,
        );
        assert.ok(f.stats().restarts >= 1);
        await f.stop();

        const impatient = await setup(
          2,
          { kafka, fetcher: { sessionTimeoutMs: 6000, maxRestarts: 2, restartBackoffMs: 100 } },
          broker.brokers,
        );
        const g = await impatient.start();
        broker.kill();
        await assert.rejects(g.done, (err: unknown) => {
          assert.ok(err instanceof KafkaError, String(err));
          assert.equal(err.code, 'KAFKA_CONSUMER_FAILED');
          assert.match(err.message, /^the Kafka consumer failed for good after 2 restart\(s\) in a row: /);
          assert.match(err.hint ?? '', /nothing was lost/);
          return true;
        });
      } finally {
        await broker.stop();
      }
    },
  );
});

describe('fetch under kill -9', () => {
  it('loses nothing: committed offsets never pass a durable item, and a restart fills in the rest', async (t) => {
    // A killed member keeps its partitions until its session times out: use the broker's minimum, 6 s.
    const s = await setup(3, { fetcher: { maxBytesPerPartition: 8192, sessionTimeoutMs: 6000 } });
    const total = 20_000;
    await publishRaw(s.topic, tasks(s.pipeline, total));
    const cfgDir = tempDir('sluice-kill-cfg-');
    const cfgFile = join(cfgDir, 'sluice.config.ts');
    writeFileSync(
      cfgFile,
      `export default ${JSON.stringify({
        fetcher: { groupId: s.groupId, maxBytesPerPartition: 8192, sessionTimeoutMs: 6000 },
        spool: { dir: s.spoolDir },
        pipelines: {
          [s.pipeline]: { topic: s.topic, partitions: 3, source: { table: 'unused', key: 'id', columns: [] } },
        },
      })};\n`,
    );
    const root = join(s.spoolDir, s.pipeline);
    const env = {
      DATABASE_URL: url,
      SLUICE_KAFKA_BROKERS: BROKERS.join(','),
      SLUICE_CONFIG: cfgFile,
      SLUICE_LOG_LEVEL: 'warn',
    };
    const run = () =>
      spawnCli(t, ['fetch', '--pipeline', s.pipeline], { env, log: join(cfgDir, `fetch-${Date.now()}.log`) });

    for (let round = 0; round < 3; round++) {
      const child = run();
      const before = spooledItems(root).length;
      await waitFor('progress before the kill', () => spooledItems(root).length >= before + 1500, 60_000);
      child.child.kill('SIGKILL');
      await child.exited;
      // Every offset below the committed one must be on disk.
      const committed = await committedOffsets(s.groupId, s.topic);
      const durable = new Set(spooledItems(root).map(offsetKey));
      for (const [partition, next] of committed) {
        for (let o = 0n; o < next; o++)
          assert.ok(durable.has(`${partition}:${o}`), `offset ${partition}:${o} committed but not in the spool`);
      }
    }
    const last = run();
    await waitFor('every offset spooled', () => new Set(spooledItems(root).map(offsetKey)).size >= total, 90_000);
    last.child.kill('SIGTERM');
    assert.equal(await last.exited, 0, `SIGTERM: graceful stop, exit 0 (${last.stderr()})`);
    const keys = new Set(spooledItems(root).map((i) => i.task.key));
    assert.equal(keys.size, total, 'every task present (duplicates allowed)');
    assert.deepEqual(await committedOffsets(s.groupId, s.topic), await highWatermarks(s.topic));

    // A second signal exits at once, still without committing past what is on disk.
    await publishRaw(
      s.topic,
      tasks(s.pipeline, 5000).map((m, i) => ({ ...m, value: envelope(s.pipeline, total + i + 1) })),
    );
    const again = run();
    const before = spooledItems(root).length;
    await waitFor('fetching again', () => spooledItems(root).length > before, 60_000);
    again.child.kill('SIGINT');
    // Two signals sent at once arrive as one (signals do not queue): the second goes as soon as the first is
    // seen. The drain may still finish first (then it is a clean stop, exit 0); the exit code must say which.
    const seen = performance.now();
    while (!again.stderr().includes('signal received: draining') && performance.now() - seen < 10_000)
      await new Promise((r) => setTimeout(r, 2));
    const t0 = Date.now();
    again.child.kill('SIGINT');
    const code = await again.exited;
    const forced = again.stderr().includes('second signal: forcing stop');
    assert.equal(code, forced ? 130 : 0, `exit ${String(code)} after ${forced ? 'a forced' : 'a clean'} stop`);
    assert.ok(Date.now() - t0 < 5000, 'exits at once');
    const committed = await committedOffsets(s.groupId, s.topic);
    const durable = new Set(spooledItems(root).map(offsetKey));
    for (const [partition, next] of committed) {
      for (let o = 0n; o < next; o++)
        assert.ok(durable.has(`${partition}:${o}`), `offset ${partition}:${o} committed but not in the spool`);
    }
  });
});
