// Counts that stay cheap at 10M rows. Counting the source and the results means reading every row (about a
// second per 5M rows here, 2.4 s per million for the exact semi-join), too slow for a status or a dashboard
// refreshed every few seconds. So a count over the whole tables is kept as a snapshot, with the moment it
// was taken by the database's clock, and the fast path adds what the ledger recorded since: milestones
// per stage created after that moment, an index range read (sluice_milestones (pipeline, stage, created_at)).
//
// How exact: source rows are as of the snapshot (rows added to or deleted from the source since are not
// seen); done is the snapshot's done plus the last stage's milestones since, so a result written without a
// new milestone (its last-stage milestone was written before the snapshot and the result after, as after a
// crash between the two) is not seen, nor is a result row written by anything but sluice. Every snapshot
// puts that right: `produce` takes one each run, `status --check` an exact one. A source with a `where`
// counts its done rows by the semi-join (its result table may hold other rows), at the exact count's cost.
//
// One read view for the whole snapshot (START TRANSACTION WITH CONSISTENT SNAPSHOT): every count sees the
// same rows, and "since" starts where the view does, so no milestone is counted twice.

import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import { quoteIdentifier } from '../core/identifiers.js';
import { doneJoin, sourceFrom } from '../user-tables/key-sql.js';
import { exactKeys } from '../user-tables/key-fit.js';
import type { Pool } from '../db/pool.js';
import type { SourceInfo } from '../user-tables/table-info.js';

export interface CountSnapshot {
  source: number;
  /** Source rows with a result (exact), or result rows (an estimate: orphans are not subtracted). */
  done: number;
  /** Done source rows sharing a result row with another (results.mergeKeys; else 0). */
  shared: number;
  /** Milestones per stage. */
  stages: Record<string, number>;
  exact: boolean;
  /** The database's clock when the counts were taken, as its own DATETIME(3) text. */
  countedAt: string;
  ageSeconds: number;
  tookMs: number;
}

/** Runs `fn` in one consistent read view; `at` is the database's clock when the view began. */
export async function withReadView<T>(pool: Pool, fn: (conn: PoolConnection, at: string) => Promise<T>): Promise<T> {
  const conn = await pool.getConnection();
  try {
    await conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
    const [[now]] = await conn.query<RowDataPacket[]>('SELECT CAST(NOW(3) AS CHAR) AS at');
    const out = await fn(conn, String(now?.at));
    await conn.query('COMMIT');
    return out;
  } catch (err) {
    await conn.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    conn.release();
  }
}

/** Milestones per stage, the whole table: part of every snapshot. */
export async function stageRows(conn: Pool | PoolConnection, pipeline: string): Promise<Record<string, number>> {
  const [rows] = await conn.query<RowDataPacket[]>(
    'SELECT stage, COUNT(*) AS n FROM sluice_milestones WHERE pipeline = ? GROUP BY stage',
    [pipeline],
  );
  return Object.fromEntries(rows.map((r) => [String(r.stage), Number(r.n)]));
}

/** Rows of the pipeline's result table: sluice_results, or the user's table. */
export async function resultRows(conn: Pool | PoolConnection, src: SourceInfo, pipeline: string): Promise<number> {
  const [[row]] =
    src.results === undefined
      ? await conn.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sluice_results WHERE pipeline = ?', [pipeline])
      : await conn.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${quoteIdentifier(src.results.table)}`);
  return Number(row?.n ?? 0);
}

/** The estimate's snapshot: source rows, result rows, milestones per stage, in one read view; stored. */
export async function takeSnapshot(pool: Pool, src: SourceInfo, pipeline: string): Promise<CountSnapshot> {
  const t0 = performance.now();
  const snap = await withReadView(pool, async (conn, at) => {
    let source: number;
    let done: number;
    let shared = 0;
    const merged = src.results !== undefined && !exactKeys(src.results);
    if (src.where === undefined && !merged) {
      const [[total]] = await conn.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${sourceFrom(src)}`);
      source = Number(total?.n ?? 0);
      done = Math.min(source, await resultRows(conn, src, pipeline));
    } else {
      // A filtered source: the result table also holds rows of keys outside the filter (another pipeline's,
      // or done before the filter), so only the semi-join tells which results are this pipeline's. So too
      // with merged keys, where one result row is the result of several source rows.
      const params: unknown[] = [];
      const r = doneJoin(src, pipeline, params);
      const matched = r.merged === null ? '0' : `COUNT(DISTINCT ${r.merged})`;
      const [[row]] = await conn.query<RowDataPacket[]>(
        `SELECT COUNT(*) AS n, COALESCE(SUM(${r.done}), 0) AS done, ${matched} ` +
          `AS matched FROM ${sourceFrom(src)} ${r.sql}`,
        params,
      );
      source = Number(row?.n ?? 0);
      done = Number(row?.done ?? 0);
      if (r.merged !== null) shared = done - Number(row?.matched ?? 0);
    }
    return { source, done, shared, stages: await stageRows(conn, pipeline), exact: false, countedAt: at };
  });
  const full = { ...snap, ageSeconds: 0, tookMs: Math.round(performance.now() - t0) };
  await saveSnapshot(pool, pipeline, full);
  return full;
}

/** Stores a snapshot unless a newer one is there already. */
export async function saveSnapshot(pool: Pool, pipeline: string, s: Omit<CountSnapshot, 'ageSeconds'>): Promise<void> {
  await pool.query(
    `INSERT INTO sluice_count_snapshots (pipeline, source_rows, done_rows, ` +
      `shared_rows, stage_rows, exact, counted_at, took_ms) VALUES (?, ?, ?, ?, ` +
      `?, ?, ?, ?)
     ON DUPLICATE KEY UPDATE
       source_rows = IF(VALUES(counted_at) >= counted_at, ` +
      `VALUES(source_rows), source_rows),
       shared_rows = IF(VALUES(counted_at) >= counted_at, ` +
      `VALUES(shared_rows), shared_rows),
       done_rows = IF(VALUES(counted_at) >= counted_at, ` +
      `VALUES(done_rows), done_rows),
       stage_rows = IF(VALUES(counted_at) >= counted_at, ` +
      `VALUES(stage_rows), stage_rows),
       exact = IF(VALUES(counted_at) >= counted_at, VALUES(exact), ` +
      `exact),
       took_ms = IF(VALUES(counted_at) >= counted_at, VALUES(took_ms), ` +
      `took_ms),
       counted_at = GREATEST(counted_at, VALUES(counted_at))`,
    [pipeline, s.source, s.done, s.shared, JSON.stringify(s.stages), s.exact, s.countedAt, s.tookMs],
  );
}

export async function readSnapshot(pool: Pool, pipeline: string): Promise<CountSnapshot | null> {
  const [[r]] = await pool.query<RowDataPacket[]>(
    `SELECT source_rows, done_rows, shared_rows, stage_rows, exact, CAST(counted_at AS CHAR) AS at, took_ms,
       TIMESTAMPDIFF(MICROSECOND, counted_at, NOW(3)) / 1e6 AS age
     FROM sluice_count_snapshots WHERE pipeline = ?`,
    [pipeline],
  );
  if (r === undefined) return null;
  const stages = (typeof r.stage_rows === 'string' ? JSON.parse(r.stage_rows) : r.stage_rows) as Record<string, number>;
  return {
    source: Number(r.source_rows),
    done: Number(r.done_rows),
    shared: Number(r.shared_rows),
    stages,
    exact: Number(r.exact) === 1,
    countedAt: String(r.at),
    ageSeconds: Math.max(0, Number(r.age)),
    tookMs: Number(r.took_ms),
  };
}

/** Milestones per stage created after `since`: an index range each. */
export async function stageRowsSince(
  pool: Pool,
  pipeline: string,
  stages: readonly string[],
  since: string,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const stage of stages) {
    const [[r]] = await pool.query<RowDataPacket[]>(
      'SELECT COUNT(*) AS n FROM sluice_milestones WHERE pipeline = ? AND stage = ? AND created_at > ?',
      [pipeline, stage, since],
    );
    out[stage] = Number(r?.n ?? 0);
  }
  return out;
}
