// Everything the database knows about one task, for `sluice inspect`: is it in the source (and the filter),
// its result, dispatch record, quarantine row, milestones and failed attempts.

import type { RowDataPacket } from 'mysql2/promise';
import { quoteIdentifier } from '../core/identifiers.js';
import { keyTextSql, sourceFrom } from '../user-tables/key-sql.js';
import { keyInSql, type KeyShape } from '../user-tables/key-shape.js';
import type { Pool } from '../db/pool.js';
import type { SourceInfo } from '../user-tables/table-info.js';
import { exactKeys } from '../user-tables/key-fit.js';

export interface TaskRecord {
  key: string;
  inTable: boolean;
  /** In the table and selected by source.where (the same as inTable without a filter). */
  inSource: boolean;
  state: 'done' | 'quarantined' | 'in flight' | 'pending' | 'not in source';
  result: Record<string, unknown> | null;
  bookkeeping: Record<string, unknown> | null;
  dispatch: Record<string, unknown> | null;
  quarantine: Record<string, unknown> | null;
  milestones: Array<Record<string, unknown>>;
  /** A recompute asked for and not yet carried out (produce --recompute). */
  recompute: Record<string, unknown> | null;
  attempts: Array<Record<string, unknown>>;
}

const plain = (r: RowDataPacket | undefined): Record<string, unknown> | null => {
  if (r === undefined) return null;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r))
    // Bytes as hex: a BINARY key or column read as text would show other characters than it holds.
    out[k] = Buffer.isBuffer(v) ? v.toString('hex') : v instanceof Date ? v.toISOString() : v;
  return out;
};

async function inFrom(
  pool: Pool,
  from: string,
  shape: KeyShape,
  key: string,
  exact = true,
): Promise<RowDataPacket | undefined> {
  const params: unknown[] = [];
  const within = keyInSql(shape, [key], params);
  if (within === 'FALSE') return undefined;
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT s.*, ${keyTextSql(shape)} AS __k FROM ${from} WHERE ${within}`,
    params,
  );
  // Byte for byte: a collation may return 'ABC' for 'abc'.
  const row = exact
    ? rows.find((r) => (Buffer.isBuffer(r.__k) ? r.__k.toString('utf8') : String(r.__k)) === key)
    : rows[0];
  if (row !== undefined) delete row.__k;
  return row;
}

export async function inspectTask(
  pool: Pool,
  src: SourceInfo,
  pipeline: string,
  key: string,
  staleAfterMs: number,
): Promise<TaskRecord> {
  const inTable = (await inFrom(pool, sourceFrom({ table: src.table }), src, key)) !== undefined;
  const inSource =
    inTable && (src.where === undefined || (await inFrom(pool, sourceFrom(src), src, key)) !== undefined);
  const r = src.results;
  const one = async (sql: string): Promise<RowDataPacket | undefined> =>
    (await pool.query<RowDataPacket[]>(sql, [pipeline, key]))[0][0];
  const bookkeeping = await one(
    'SELECT attempts, worker_id, started_at, finished_at, duration_ms, output ' +
      'FROM sluice_results WHERE pipeline = ? AND task_key = ?',
  );
  const result =
    r === undefined ? bookkeeping : await inFrom(pool, `${quoteIdentifier(r.table)} s`, r, key, exactKeys(r));
  const [[dispatch]] = await pool.query<RowDataPacket[]>(
    'SELECT run_id, topic, dispatches, dispatched_at, dispatched_at > NOW(3) ' +
      '- INTERVAL ? MICROSECOND AS recent FROM sluice_dispatches WHERE pipeline ' +
      '= ? AND task_key = ?',
    [staleAfterMs * 1000, pipeline, key],
  );
  const quarantine = await one(
    'SELECT stage, error_class, error_message, attempts, worker_id, ' +
      'quarantined_at FROM sluice_dead_tasks WHERE pipeline = ? AND task_key = ?',
  );
  const [milestones] = await pool.query<RowDataPacket[]>(
    'SELECT stage, version, replaced, attempt, duration_ms, created_at FROM sluice_milestones ' +
      'WHERE pipeline = ? AND task_key = ? ORDER BY created_at, stage',
    [pipeline, key],
  );
  const recompute = await one(
    'SELECT from_stage, run_id, dispatches, requested_at FROM sluice_recomputes WHERE pipeline = ? AND task_key = ?',
  );
  const [attempts] = await pool.query<RowDataPacket[]>(
    'SELECT stage, attempt, error_class, error_message, retriable, ' +
      'superseded, worker_id, created_at FROM sluice_attempts WHERE pipeline = ' +
      '? AND task_key = ? ORDER BY id',
    [pipeline, key],
  );
  const state = !inSource
    ? 'not in source'
    : result !== undefined && result !== null
      ? 'done'
      : quarantine !== undefined
        ? 'quarantined'
        : Number(dispatch?.recent ?? 0) === 1
          ? 'in flight'
          : 'pending';
  return {
    key,
    inTable,
    inSource,
    state,
    result: plain(result ?? undefined),
    bookkeeping: plain(bookkeeping),
    dispatch: plain(dispatch),
    quarantine: plain(quarantine),
    milestones: milestones.map((m) => plain(m)!),
    recompute: plain(recompute),
    attempts: attempts.map((a) => plain(a)!),
  };
}
