// One bad row never takes others down, a task runs once at a time, and nothing loops: the worker and its
// ledger against the real MariaDB, with outputs and errors the database cannot store as they are.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Connection, type RowDataPacket } from 'mysql2/promise';
import type { StageConfig } from '../../src/config/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { releaseQuarantined } from '../../src/ledger/dispatches.js';
import { LedgerWriteError, LedgerWriter, type LedgerOp } from '../../src/ledger/ledger-writer.js';
import { DB_OUTAGE_POLICY } from '../../src/db/db-errors.js';
import { type Pool } from '../../src/db/pool.js';
import { fileDatabase } from '../helpers/fixtures.js';
import { workSetup } from '../helpers/work.js';

let url: string;
let db: Connection;
let pool: Pool;
fileDatabase({ poolSize: 3 }, (d) => ({ url, db, pool } = d));

const nested = (depth: number): unknown => (depth === 0 ? 1 : [nested(depth - 1)]);

describe('the ledger writer on a batch with rows the database refuses', () => {
  it('splits the batch so only the refused rows fail: a 20 MB output and JSON 32 deep', async () => {
    const ledger = new LedgerWriter(pool, silentLogger(), {
      maxBatch: 100,
      flushMs: 50,
      databaseUrl: url,
      maxStatementBytes: 1e9,
      retry: { ...DB_OUTAGE_POLICY, initialDelayMs: 10, maxDelayMs: 10 },
    });
    const op = (key: string, output: string): LedgerOp => ({
      kind: 'milestone',
      pipeline: 'bisect',
      key,
      stage: 's',
      output,
      durationMs: 1,
      attempt: 1,
      version: '1',
      hash: Buffer.alloc(16),
    });
    const outcomes = await Promise.allSettled([
      ledger.write(op('a', '1')),
      ledger.write(op('huge', JSON.stringify('x'.repeat(20_000_000)))),
      ledger.write(op('b', '2')),
      ledger.write(op('deep', JSON.stringify(nested(32)))),
      ledger.write(op('c', '3')),
    ]);
    await ledger.close();
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled'],
    );
    for (const o of outcomes)
      if (o.status === 'rejected') assert.ok(o.reason instanceof LedgerWriteError, String(o.reason));
    const [rows] = await db.query<RowDataPacket[]>(
      "SELECT CAST(task_key AS CHAR) AS k FROM sluice_milestones WHERE pipeline = 'bisect' ORDER BY k",
    );
    assert.deepEqual(
      rows.map((r) => String(r.k)),
      ['a', 'b', 'c'],
    );
  });
});

describe('a worker whose tasks produce what the ledger cannot store', () => {
  it(
    'quarantines only those tasks, with the reason, without running their ' + 'stage again; neighbours finish',
    async (t) => {
      const runs = new Map<string, number>();
      const stages: StageConfig[] = [
        {
          name: 'make',
          run: async (p: { n: string }) => {
            runs.set(p.n, (runs.get(p.n) ?? 0) + 1);
            if (p.n === 'huge') return 'x'.repeat(20_000_000);
            if (p.n === 'deep') return nested(32);
            return { ok: p.n };
          },
        },
      ];
      const s = await workSetup(t, db, url, stages, { ledgerBatch: 500, ledgerFlushMs: 50 });
      await s.spool(['a', 'huge', 'b', 'deep', 'c'], { perSegment: 10 });
      const stats = await (await s.start()).done;
      assert.deepEqual([stats.done, stats.quarantined], [3, 2]);
      assert.equal(runs.get('huge'), 1);
      assert.equal(runs.get('deep'), 1);
      const [dead] = await db.query<RowDataPacket[]>(
        'SELECT CAST(task_key AS CHAR) AS k, error_message FROM sluice_dead_tasks WHERE pipeline = ? ORDER BY k',
        [s.name],
      );
      assert.equal(dead.length, 2);
      assert.match(
        String(dead[1]!.error_message),
        /^output of stage make is 20\.0 MB \(20000002 bytes\), over the limit of \d+ bytes \(worker\.maxOutputBytes\)$/,
      );
      assert.match(String(dead[0]!.error_message), /output of stage make nests 32 levels deep/);
      assert.equal(await s.count('sluice_results'), 3);
    },
  );

  it(
    'records a stage error too long for its column cut by bytes, and ' + 'quarantines after the attempts: no loop',
    async (t) => {
      let runs = 0;
      const message = '漢'.repeat(25_000);
      const s = await workSetup(t, db, url, [
        {
          name: 'cjk',
          retry: { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 1 },
          run: async () => {
            runs++;
            throw new Error(message);
          },
        },
      ]);
      await s.spool(['k1']);
      const w = await s.start();
      const stats = await w.done;
      assert.equal(runs, 2, 'two attempts, then quarantine');
      assert.equal(stats.quarantined, 1);
      const [rows] = await db.query<RowDataPacket[]>(
        'SELECT OCTET_LENGTH(error_message) AS b FROM sluice_attempts WHERE pipeline = ?',
        [s.name],
      );
      assert.equal(rows.length, 2);
      for (const r of rows) assert.ok(Number(r.b) <= 65_535 && Number(r.b) > 60_000, `stored ${r.b} bytes`);
    },
  );
});

describe('copies of one task', () => {
  it('run one at a time: 5 copies in one segment and 3 in another call the service once', async (t) => {
    const calls = new Map<string, number>();
    let concurrent = 0;
    let most = 0;
    const s = await workSetup(
      t,
      db,
      url,
      [
        {
          name: 'svc',
          concurrency: 16,
          run: async (p: { n: string }) => {
            calls.set(p.n, (calls.get(p.n) ?? 0) + 1);
            most = Math.max(most, ++concurrent);
            await new Promise((r) => setTimeout(r, 50));
            concurrent--;
            return p.n;
          },
        },
      ],
      { maxInFlight: 64 },
    );
    await s.spool(['dup', 'other', 'dup', 'dup', 'dup', 'dup'], { perSegment: 10 });
    await s.spool(['dup', 'dup', 'x', 'dup'], { perSegment: 10 });
    const stats = await (await s.start()).done;
    assert.equal(calls.get('dup'), 1);
    assert.equal(stats.done, 3);
    assert.equal(stats.skipped, 7);
    assert.ok(most >= 2, 'different keys still run in parallel');
    assert.equal(await s.count('sluice_results'), 3);
  });
});

describe('a task requeued from quarantine (produce --retry-quarantined)', () => {
  it('gets a fresh attempt budget; its history stays', async (t) => {
    let failFirst = Infinity;
    let runs = 0;
    const s = await workSetup(t, db, url, [
      {
        name: 'flaky',
        retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 1 },
        run: async (_p, ctx: { attempt: number }) => {
          runs++;
          if (runs <= failFirst) throw new Error(`transient ${ctx.attempt}`);
          return 'ok';
        },
      },
    ]);
    await s.spool(['r1']);
    assert.equal((await (await s.start()).done).quarantined, 1);
    assert.equal(runs, 3);
    failFirst = runs + 1; // one more transient failure, then success
    await releaseQuarantined(pool, s.name, ['r1']);
    await s.spool(['r1']);
    const second = await (await s.start()).done;
    assert.deepEqual([second.done, second.quarantined], [1, 0]);
    assert.equal(await s.count('sluice_attempts'), 4, 'all four failures kept');
    assert.equal(await s.count('sluice_attempts', 'AND superseded = TRUE'), 3);
  });
});

describe('a task whose key has no source row', () => {
  it('is not run: recorded as a bad message (not-in-source) and kept in the spool quarantine', async (t) => {
    const ran: string[] = [];
    const s = await workSetup(t, db, url, [{ name: 'one', run: async (p: { n: string }) => ran.push(p.n) }]);
    await s.spool(['here', 'also-here']);
    await s.spool(['ghost'], { inSource: false });
    const w = await s.start();
    const stats = await w.done;
    assert.deepEqual(ran.sort(), ['also-here', 'here']);
    assert.equal(stats.rejected, 1);
    const [bad] = await db.query<RowDataPacket[]>(
      'SELECT reason, CAST(message_key AS CHAR) AS k FROM sluice_bad_messages WHERE pipeline = ?',
      [s.name],
    );
    assert.deepEqual(
      bad.map((b) => [String(b.reason), String(b.k)]),
      [['not-in-source', 'ghost']],
    );
    assert.equal(await s.count('sluice_results'), 2);
  });
});
