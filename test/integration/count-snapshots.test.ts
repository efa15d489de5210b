// Counts at scale, against the real MariaDB: the fast counts are the last whole-table snapshot plus the
// ledger's milestones since, so status and the dashboard never count 10M rows on a refresh; each query they
// run reads an index range of the ledger (EXPLAIN says so), and an exact count or a produce resets the base.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { readSnapshot } from '../../src/ledger/count-snapshots.js';
import { estimateCounts, exactCounts } from '../../src/ledger/counts.js';
import type { PendingFilter } from '../../src/ledger/pending.js';
import type { Pool } from '../../src/db/pool.js';
import { checkSource } from '../../src/user-tables/source.js';
import type { SourceInfo } from '../../src/user-tables/table-info.js';
import { ledgerStatus } from '../../src/ledger/status-reads.js';
import { randomName } from '../helpers/db.js';
import { fileDatabase } from '../helpers/fixtures.js';

let db: Connection;
let pool: Pool;
fileDatabase({ poolSize: 3 }, (d) => ({ db, pool } = d));

const filter = (pipeline: string): PendingFilter => ({ pipeline, staleAfterMs: 3_600_000, includeQuarantined: false });

async function source(rows: number): Promise<SourceInfo> {
  const table = randomName('src');
  await db.query(`CREATE TABLE ${table} (id INT PRIMARY KEY)`);
  await db.query(`INSERT INTO ${table} SELECT seq FROM seq_1_to_${rows}`);
  return checkSource(pool, { table, key: 'id', columns: [] }, 'p');
}

/** What a worker leaves for a finished task of a one-stage pipeline: the milestone, then the result. */
async function finish(pipeline: string, from: number, to: number, opts: { milestone?: boolean } = {}): Promise<void> {
  if (opts.milestone !== false) {
    await db.query(
      `INSERT INTO sluice_milestones (pipeline, task_key, stage, output, ` +
        `duration_ms, attempt) SELECT ?, CAST(seq AS CHAR), 'ner', '{}', 1, 1 ` +
        `FROM seq_${from}_to_${to}`,
      [pipeline],
    );
  }
  await db.query(
    `INSERT INTO sluice_results (pipeline, task_key, started_at, finished_at, ` +
      `duration_ms) SELECT ?, CAST(seq AS CHAR), NOW(3), NOW(3), 1 FROM seq_${from}_to_${to}`,
    [pipeline],
  );
}

describe('the fast counts', () => {
  it('take a snapshot when there is none, then add the milestones recorded since without counting again', async () => {
    const src = await source(100);
    const p = randomName('p');
    await finish(p, 1, 20);
    const first = await estimateCounts(pool, src, filter(p), ['ner']);
    assert.deepEqual([first.source, first.done, first.missing, first.exact], [100, 20, 80, false]);
    const snap = await readSnapshot(pool, p);
    assert.deepEqual([snap?.source, snap?.done, snap?.stages], [100, 20, { ner: 20 }]);

    await finish(p, 21, 50);
    const later = await estimateCounts(pool, src, filter(p), ['ner']);
    assert.equal(later.done, 50);
    assert.equal((await readSnapshot(pool, p))?.countedAt, snap?.countedAt, 'the snapshot was not taken again');
  });

  it('do not see a result written without a new milestone, nor a new source row, until the next snapshot', async () => {
    const src = await source(100);
    const p = randomName('p');
    await finish(p, 1, 10);
    await estimateCounts(pool, src, filter(p), ['ner']);
    await finish(p, 11, 12, { milestone: false });
    await db.query(`INSERT INTO ${src.table} VALUES (101)`);
    const stale = await estimateCounts(pool, src, filter(p), ['ner']);
    assert.deepEqual([stale.source, stale.done], [100, 10]);
    const fresh = await estimateCounts(pool, src, filter(p), ['ner'], { refresh: true });
    assert.deepEqual([fresh.source, fresh.done], [101, 12]);
  });

  it('are reset by an exact count, which stores an exact snapshot', async () => {
    const src = await source(100);
    const p = randomName('p');
    await finish(p, 1, 30);
    await estimateCounts(pool, src, filter(p), ['ner']);
    // A result for a key outside the source: the estimate counts it, the exact count does not.
    await db.query(
      'INSERT INTO sluice_results (pipeline, task_key, started_at, finished_at, ' +
        "duration_ms) VALUES (?, 'gone', NOW(3), NOW(3), 1)",
      [p],
    );
    const exact = await exactCounts(pool, src, filter(p));
    assert.deepEqual([exact.done, exact.orphans, exact.exact], [30, 1, true]);
    const snap = await readSnapshot(pool, p);
    assert.deepEqual([snap?.done, snap?.exact, snap?.stages], [30, true, { ner: 30 }]);
    await finish(p, 31, 35);
    assert.equal((await estimateCounts(pool, src, filter(p), ['ner'])).done, 35);
  });

  it('give per-stage totals in ledgerStatus from the snapshot plus the milestones since', async () => {
    const src = await source(100);
    const p = randomName('p');
    await finish(p, 1, 40);
    await exactCounts(pool, src, filter(p));
    await finish(p, 41, 45);
    const s = await ledgerStatus(pool, src, p, 3_600_000, false, ['ner']);
    assert.deepEqual(
      s.stages.map((x) => [x.stage, x.milestones]),
      [['ner', 45]],
    );
    assert.equal(s.counts.done, 45);
  });
});

describe('at scale', () => {
  it('read the ledger by index ranges only: no status query reads the old rows of a ledger table', async () => {
    const src = await source(10);
    const p = randomName('p');
    // 20,000 old milestones and dispatch records of the pipeline: the status of a long run.
    await db.query(
      `INSERT INTO sluice_milestones (pipeline, task_key, stage, output, ` +
        `duration_ms, attempt, created_at) SELECT ?, CAST(seq AS CHAR), 'ner', ` +
        `'{}', 1, 1, NOW(3) - INTERVAL 1 DAY FROM seq_1_to_20000`,
      [p],
    );
    await db.query(
      `INSERT INTO sluice_dispatches (pipeline, task_key, run_id, topic, ` +
        `dispatches, dispatched_at) SELECT ?, CAST(seq AS CHAR), 'r', 't', 1, ` +
        `NOW(3) - INTERVAL 2 DAY FROM seq_1_to_20000`,
      [p],
    );
    await db.query('ANALYZE TABLE sluice_milestones, sluice_dispatches');
    await estimateCounts(pool, src, filter(p), ['ner']);

    const seen: Array<[string, unknown[]]> = [];
    const spy = new Proxy(pool, {
      get(target, prop, receiver) {
        if (prop !== 'query') return Reflect.get(target, prop, receiver) as unknown;
        return (sql: string, params: unknown[]) => {
          seen.push([sql, params]);
          return target.query(sql, params);
        };
      },
    });
    await ledgerStatus(spy, src, p, 3_600_000, false, ['ner']);
    assert.ok(seen.length >= 5, `${seen.length} queries`);
    for (const [sql, params] of seen) {
      const [plan] = await db.query<RowDataPacket[]>(`EXPLAIN ${sql}`, params);
      for (const step of plan) {
        if (!String(step.table).startsWith('sluice_') && !['t', 'x', 'r'].includes(String(step.table))) continue;
        // 20,000 rows of the pipeline, none of them recent: a plan reading more than a few is reading them all.
        assert.ok(
          !['ALL', 'index'].includes(String(step.type)) && Number(step.rows) < 1000,
          `a scan of ${String(step.table)} in:\n${sql}\n${JSON.stringify(step)}`,
        );
      }
    }
  });
});

describe('a filtered source', () => {
  it("counts as done only its own rows' results, not the other rows' in the same result table", async () => {
    const table = randomName('src');
    await db.query(`CREATE TABLE ${table} (id INT PRIMARY KEY)`);
    await db.query(`INSERT INTO ${table} SELECT seq FROM seq_1_to_100`);
    const src = await checkSource(pool, { table, key: 'id', columns: [], where: 'id <= 10' }, 'p');
    const p = randomName('p');
    // Results for 1..40: 10 of them are this pipeline's rows, 30 are outside its filter.
    await finish(p, 1, 40);
    const c = await estimateCounts(pool, src, filter(p), ['ner']);
    assert.deepEqual([c.source, c.done], [10, 10]);
    const q = randomName('p');
    await finish(q, 5, 40);
    assert.deepEqual([(await estimateCounts(pool, src, filter(q), ['ner'])).done], [6]);
  });
});
