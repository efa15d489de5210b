// A full spool disk is backpressure: the fetcher pauses (before the write, when the free space would drop
// under spool.minFreeBytes; or when a write fails with ENOSPC anyway), says so in one warning line and in
// status, never restarts its consumer or logs a stack, commits nothing past what is on disk, and resumes
// when the workers have freed space. The spool sits on a real, small tmpfs file system. Real MariaDB and Kafka.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { defaults, mergeLayers, resolveStage, type SluiceConfig } from '../../src/config/config.js';
import { validateConfig } from '../../src/config/validate.js';
import { createLogger, silentLogger } from '../../src/core/logger.js';
import { migrate } from '../../src/db/migrate.js';
import { startFetcher } from '../../src/fetcher/fetcher.js';
import { produce } from '../../src/producer/producer.js';
import { collectStatus } from '../../src/status/collect.js';
import { renderStatus } from '../../src/status/render.js';
import { startWorker } from '../../src/worker/worker.js';
import { NonRetriableError } from '../../src/core/errors.js';
import { spoolPaths } from '../../src/spool/layout.js';
import { SpoolWriter } from '../../src/spool/writer.js';
import { dbConfig, randomName, testDatabase } from '../helpers/db.js';
import { fileTeardown, onTeardown } from '../helpers/fixtures.js';
import { BROKERS, ensureKafka } from '../helpers/kafka.js';
import { waitFor } from '../helpers/spool.js';

const MiB = 1024 * 1024;
const ROWS = 600;
const file = fileTeardown();
let url: string;
let db: Connection;

before(async () => {
  await ensureKafka();
  url = await testDatabase(file);
  await migrate(dbConfig(url), silentLogger());
  db = await mysql.createConnection(url);
  // 600 tasks of 16 KB: about 10 MB of spool, more than the small disks below hold beside their minimum.
  await db.query('CREATE TABLE docs (id INT PRIMARY KEY, body TEXT NOT NULL)');
  await db.query(`INSERT INTO docs SELECT seq, REPEAT(CHAR(97 + seq % 26), 16000) FROM seq_1_to_${ROWS}`);
});
after(async () => {
  await db?.end();
});

/** A tmpfs of `size` for the spool, unmounted when the file's tests end. */
function smallDisk(size: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-disk-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  onTeardown(file, () => {
    execFileSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

function config(name: string, spoolDir: string, minFreeBytes: number): SluiceConfig {
  return validateConfig(
    mergeLayers(structuredClone(defaults), {
      database: { url },
      kafka: { brokers: BROKERS },
      producer: { pageSize: 200, flushMs: 5 },
      // A whole fetch is at most 2 MiB: fetching resumes at minFreeBytes + 2 MiB free.
      fetcher: { statsIntervalMs: 60_000, maxBytes: 2 * MiB },
      worker: { pollMs: 20 },
      spool: { dir: spoolDir, minFreeBytes, maxSegmentItems: 50 },
      pipelines: {
        [name]: {
          topic: randomName('sluice-disk'),
          partitions: 2,
          source: { table: 'docs', key: 'id', columns: ['body'] },
          stages: [{ name: 'len', run: async (p: { body: string }) => p.body.length }],
        },
      },
    }),
  );
}

function capture() {
  const records: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write: (c, _e, done) => (
      records.push(
        ...String(c)
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      ),
      done()
    ),
  });
  return { records, log: createLogger({ level: 'info', pretty: false, isTTY: false, destination: sink }) };
}

/** Fills the small disk, waits for the pause, then lets a worker free it: every task ends done. */
async function fillAndDrain(c: SluiceConfig, name: string) {
  const { records, log } = capture();
  assert.equal((await produce({ config: c, pipeline: name, log: silentLogger() })).published, ROWS);
  const f = await startFetcher({ config: c, pipeline: name, log });
  onTeardown(file, () => f.stop());
  await waitFor('paused for a full disk', () => f.stats().pausedReason === 'disk full', 60_000);
  const spooledAtPause = f.stats().spooled;
  assert.ok(spooledAtPause < ROWS, `the disk filled before everything was spooled (${spooledAtPause})`);
  // status reads the fetcher's heartbeat, written every few seconds.
  await waitFor(
    'status says why the fetcher is paused',
    async () => {
      const lines: string[] = [];
      renderStatus(await collectStatus(c, name, silentLogger()), (l) => lines.push(l));
      return /fetcher .* paused: disk full \(\d+ MiB free\)/.test(lines.join('\n'));
    },
    30_000,
  );

  const w = await startWorker({ config: c, pipeline: name, log: silentLogger() });
  onTeardown(file, () => w.stop());
  await waitFor(
    'every task done',
    async () => {
      const [[r]] = await db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sluice_results WHERE pipeline = ?', [
        name,
      ]);
      return Number(r?.n) === ROWS;
    },
    120_000,
  );
  const stats = await f.stop();
  await w.stop();
  return { records, stats };
}

function assertQuiet(records: Array<Record<string, unknown>>, restarts: number): void {
  assert.equal(restarts, 0, 'the consumer never restarted');
  const loud = records.filter((r) => Number(r.level) >= 50);
  assert.deepEqual(
    loud.map((r) => r.msg),
    [],
    'no error records',
  );
  assert.ok(!records.some((r) => JSON.stringify(r).includes('    at ')), 'no stack trace in any record');
  const warnings = records.filter((r) => r.msg === 'spool disk full: fetching paused until space returns');
  const resumed = records.filter((r) => r.msg === 'spool disk has room again: fetching resumed');
  assert.ok(
    warnings.length >= 1 && warnings.length === resumed.length,
    `one warning per pause, each resumed: ${warnings.length} / ${resumed.length}`,
  );
  assert.equal(typeof warnings[0]!.freeMiB, 'number');
  assert.equal(typeof warnings[0]!.dir, 'string');
}

describe('a full spool disk', () => {
  it(
    'pauses fetching before a write would leave less than spool.minFreeBytes ' +
      'free, and resumes when the workers free space',
    async () => {
      const name = randomName('full');
      const { records, stats } = await fillAndDrain(config(name, smallDisk('12m'), 4 * MiB), name);
      assertQuiet(records, stats.restarts);
      assert.ok(!records.some((r) => r.code === 'ENOSPC'), 'the free-space check came first: no write failed');
    },
  );

  it('treats an ENOSPC that happens anyway as the same pause: nothing committed past it, nothing lost', async () => {
    const name = randomName('enospc');
    // minFreeBytes 0: no check before the write, so the disk really fills and a write fails.
    const { records, stats } = await fillAndDrain(config(name, smallDisk('6m'), 0), name);
    assertQuiet(records, stats.restarts);
    assert.ok(
      records.some((r) => r.code === 'ENOSPC'),
      'a write failed with ENOSPC',
    );
    const [[dup]] = await db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sluice_results WHERE pipeline = ?', [
      name,
    ]);
    assert.equal(Number(dup?.n), ROWS, 'every task has its result');
  });

  it(
    'a worker on a full disk does not fail: quarantined and rejected tasks ' +
      'are recorded in the database, their spool copies skipped with a warning',
    async () => {
      const name = randomName('wfull');
      const dir = smallDisk('2m');
      const c = config(name, dir, 0);
      c.pipelines[name]!.stages = [
        resolveStage({
          name: 'fails',
          run: async () => {
            throw new NonRetriableError('this document cannot be read');
          },
        }),
      ];
      const writer = new SpoolWriter(spoolPaths(dir, name), 50);
      await writer.open();
      const task = (key: number) => ({
        v: 1 as const,
        pipeline: name,
        key,
        payload: { body: 'b' },
        attempt: 1,
        runId: 'r',
        producedAt: '',
      });
      await writer.writeItems(
        0,
        [task(1), task(2), task(99_999)].map((t, i) => ({ partition: 0, offset: String(i), task: t })),
      );
      // Fill what is left of the disk.
      const filler = openSync(join(dir, 'filler'), 'w');
      try {
        for (;;) writeSync(filler, Buffer.alloc(64 * 1024));
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
      } finally {
        closeSync(filler);
      }
      const { records, log } = capture();
      const stats = await (await startWorker({ config: c, pipeline: name, log, exitWhenIdle: true })).done;
      assert.deepEqual([stats.quarantined, stats.done], [2, 0]);
      const [dead] = await db.query<RowDataPacket[]>(
        'SELECT CAST(task_key AS CHAR) AS k FROM sluice_dead_tasks WHERE pipeline = ? ORDER BY k',
        [name],
      );
      assert.deepEqual(
        dead.map((d) => String(d.k)),
        ['1', '2'],
      );
      const [bad] = await db.query<RowDataPacket[]>('SELECT reason FROM sluice_bad_messages WHERE pipeline = ?', [
        name,
      ]);
      assert.deepEqual(
        bad.map((b) => String(b.reason)),
        ['not-in-source'],
      );
      const skipped = records.filter(
        (r) => r.msg === 'spool disk full: quarantine copies not written (the database keeps the record)',
      );
      assert.equal(skipped.length, 1, 'one warning for the three copies skipped, not a line each');
      const loud = records.filter((r) => Number(r.level) >= 50 && r.msg !== 'task quarantined');
      assert.deepEqual(
        loud.map((r) => r.msg),
        [],
        'nothing failed but the stage',
      );
    },
  );
});
