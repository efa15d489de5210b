// The ledger writer's loop, with a fake pool: batching, and retries that never drop a write.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../src/core/logger.js';
import { LedgerWriter, type LedgerOp } from '../../src/ledger/ledger-writer.js';
import type { Pool } from '../../src/db/pool.js';
import { fakeClock } from '../helpers/fake-clock.js';

const result = (key: string): LedgerOp => ({
  kind: 'result',
  pipeline: 'p',
  key,
  output: 'null',
  attempts: 1,
  workerId: 'w',
  startedAt: new Date(),
  finishedAt: new Date(),
  durationMs: 1,
});

function fakePool(failures: Array<{ code: string }>): { pool: Pool; statements: Array<{ sql: string; rows: number }> } {
  const statements: Array<{ sql: string; rows: number }> = [];
  const pool = {
    query: async (sql: string, params: unknown[][][]) => {
      const f = failures.shift();
      if (f !== undefined) throw Object.assign(new Error(f.code), f);
      statements.push({ sql, rows: params[0]!.length });
      return [[], []];
    },
  } as unknown as Pool;
  return { pool, statements };
}

describe('LedgerWriter', () => {
  it('writes many ops as one multi-row statement per kind', async () => {
    const { pool, statements } = fakePool([]);
    const ledger = new LedgerWriter(pool, silentLogger(), {
      maxBatch: 1000,
      flushMs: 5,
      databaseUrl: 'mysql://root@127.0.0.1:3306/x',
    });
    await Promise.all([
      ...Array.from({ length: 50 }, (_, i) => ledger.write(result(String(i)))),
      ledger.write({
        kind: 'milestone',
        pipeline: 'p',
        key: '1',
        stage: 's',
        output: '1',
        durationMs: 1,
        attempt: 1,
        version: '1',
        hash: Buffer.alloc(16),
      }),
    ]);
    assert.deepEqual(
      statements.map((s) => [s.sql.trim().split(/\s+/).slice(0, 3).join(' '), s.rows]),
      [
        ['INSERT INTO sluice_milestones', 1],
        ['INSERT INTO sluice_results', 50],
      ],
    );
  });

  it('while one batch commits, what is written meanwhile waits and goes as the next batch, whole', async () => {
    const statements: Array<{ table: string; rows: number }> = [];
    let release = (): void => {};
    const gate = new Promise<void>((r) => (release = r));
    const pool = {
      query: async (sql: string, params: unknown[][][]) => {
        statements.push({ table: sql.trim().split(/\s+/)[2]!, rows: params[0]!.length });
        if (statements.length === 1) await gate;
        return [[], []];
      },
    } as unknown as Pool;
    const ledger = new LedgerWriter(pool, silentLogger(), {
      maxBatch: 10,
      flushMs: 1,
      databaseUrl: 'mysql://root@127.0.0.1:3306/x',
    });
    const first = ledger.write(result('first'));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(statements.length, 1, 'the first batch is being committed');
    let flushed = false;
    const later = Array.from({ length: 25 }, (_, i) => ledger.write(result(`later-${i}`)));
    const flush = ledger.flush().then(() => (flushed = true));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(statements.length, 1, 'nothing more is sent while the commit before it runs');
    assert.equal(flushed, false);
    release();
    await Promise.all([first, ...later, flush]);
    assert.deepEqual(
      statements,
      [
        { table: 'sluice_results', rows: 1 },
        { table: 'sluice_results', rows: 25 },
      ],
      'the 25 writes (past maxBatch) went as one statement',
    );
  });

  it('retries a write that failed because the database went away, and resolves it once it succeeds', async () => {
    const { pool, statements } = fakePool([
      { code: 'ECONNREFUSED' },
      { code: 'PROTOCOL_CONNECTION_LOST' },
      { code: 'ER_LOCK_DEADLOCK' },
    ]);
    const clock = fakeClock();
    const ledger = new LedgerWriter(pool, silentLogger(), {
      maxBatch: 10,
      flushMs: 1,
      databaseUrl: 'mysql://root@127.0.0.1:3306/x',
      clock,
    });
    await ledger.write(result('survivor'));
    assert.equal(statements.length, 1, 'written once, after three failures');
    assert.deepEqual(clock.sleeps, [400, 800, 1600], 'the outage policy doubles its wait');
  });

  it('rejects, instead of retrying forever, a write the database refuses for good', async () => {
    const { pool } = fakePool([{ code: 'ER_DATA_TOO_LONG' }]);
    const ledger = new LedgerWriter(pool, silentLogger(), {
      maxBatch: 10,
      flushMs: 1,
      databaseUrl: 'mysql://root@127.0.0.1:3306/x',
    });
    await assert.rejects(ledger.write(result('too-long')), /ER_DATA_TOO_LONG/);
  });
});
