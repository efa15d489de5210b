// The reconcile query: source keys with no result, minus tasks still in flight, minus quarantined ones,
// read in keyset pages (WHERE key > :last ORDER BY key LIMIT :n) so a page costs the same wherever it is.
//
// LEFT JOIN ... IS NULL rather than NOT EXISTS: on MariaDB 10.11 both probe the results primary key
// (eq_ref), but the join gets the "Not exists" early-out while NOT EXISTS runs as a dependent subquery;
// a full pass over 200k rows took 0.28 s against 0.72 s (and NOT IN 0.61 s).
//
// Source keys meet the ledger as their canonical text (key-sql.ts), which still lets MariaDB/MySQL probe the
// primary key of each ledger table. The page cursor is always the last row's real key: the key column is
// NOT NULL (source.ts refuses a nullable one), so no NULL can turn into a cursor.

import type { RowDataPacket } from 'mysql2/promise';
import { quoteIdentifier } from '../core/identifiers.js';
import { envelopeKey } from '../core/envelope.js';
import { doneJoin, keyTextSql, sourceFrom } from '../user-tables/key-sql.js';
import { envelopeParts, keyAfterSql, keyInSql, keyOrderSql } from '../user-tables/key-shape.js';
import type { Pool } from '../db/pool.js';
import type { SourceInfo } from '../user-tables/table-info.js';
import { asText } from '../core/text.js';

export interface PendingFilter {
  pipeline: string;
  /** Whether the pipeline has dispatch records / quarantined tasks at all: joins that cannot match are left out. */
  hasDispatches?: boolean;
  hasQuarantined?: boolean;
  /** Skip tasks dispatched less than this long ago (still in flight); null publishes them again (--all). */
  staleAfterMs: number | null;
  /** Include quarantined tasks (--retry-quarantined). */
  includeQuarantined: boolean;
  /**
   * Only these keys (their canonical text), when set: a requeue publishes what it requeued, not a pass over the whole
   * source.
   */
  keys?: readonly string[];
}

export interface PendingRow {
  /** The key as the envelope carries it: a number for safe integers, otherwise a string. */
  key: string | number;
  /** The key as stored in the ledger and sent as the Kafka message key. */
  keyText: string;
  /** A composite key's parts (the envelope's `parts`). */
  parts?: Array<string | number>;
  /** How many times it was published before (from sluice_dispatches). */
  previousDispatches: number;
  quarantined: boolean;
  /** A done task to recompute (produce --recompute): its request is recorded before it is sent. */
  recompute?: { fromStage: string; forced: boolean };
  row: Record<string, unknown>;
}

const K = '__sluice_key';
const N = '__sluice_dispatches';
const D = '__sluice_dead';

// A join that cannot match (no dispatch records or no quarantined tasks for the pipeline, as on a first
// run) is left out and its columns become constants: each source row then costs one probe instead of
// three. (A derived one-row stand-in instead of leaving it out made MariaDB sort every page: 100x slower.)
interface From {
  sql: string;
  /** True on a source row that has its result (one definition of done: key-sql.ts doneJoin). */
  done: string;
  /** The result key when merged keys are accepted (results.mergeKeys), else null. */
  merged: string | null;
  dispatches: string;
  quarantined: string;
}

export function joins(src: SourceInfo, f: PendingFilter, params: unknown[]): From {
  const k = keyTextSql(src);
  const result = doneJoin(src, f.pipeline, params);
  let sql = `FROM ${sourceFrom(src)}
  ${result.sql}`;
  if (f.hasDispatches !== false) {
    sql += `\n  LEFT JOIN sluice_dispatches d ON d.pipeline = ? AND d.task_key = ${k}`;
    params.push(f.pipeline);
  }
  if (f.hasQuarantined !== false) {
    sql += `\n  LEFT JOIN sluice_dead_tasks x ON x.pipeline = ? AND x.task_key = ${k}`;
    params.push(f.pipeline);
  }
  return {
    sql,
    done: result.done,
    merged: result.merged,
    dispatches: f.hasDispatches === false ? '0' : 'COALESCE(d.dispatches, 0)',
    quarantined: f.hasQuarantined === false ? '0' : 'x.task_key IS NOT NULL',
  };
}

function filters(f: PendingFilter, from: From, params: unknown[]): string {
  let where = `WHERE NOT (${from.done})`;
  if (f.staleAfterMs !== null && f.hasDispatches !== false) {
    // A quarantined task is finished, not in flight, however recently it was dispatched (as the counts say).
    const quarantined = f.includeQuarantined && f.hasQuarantined !== false ? ' OR x.task_key IS NOT NULL' : '';
    where += ` AND (d.task_key IS NULL OR d.dispatched_at <= NOW(3) - INTERVAL ? MICROSECOND${quarantined})`;
    params.push(f.staleAfterMs * 1000);
  }
  if (!f.includeQuarantined && f.hasQuarantined !== false) where += ' AND x.task_key IS NULL';
  return where;
}

/** `keys` as a condition on the source key columns themselves, so the index is read only at those keys. */
function keysCondition(src: SourceInfo, keys: readonly string[] | undefined, params: unknown[]): string {
  if (keys === undefined) return '';
  const within = keyInSql(src, keys, params);
  if (within === 'FALSE' || src.parts.every((p) => p.kind !== 'string')) return ` AND ${within}`;
  // A collation may match more rows than asked for (case variants); the key text must be the same bytes.
  params.push(keys);
  return ` AND ${within} AND CAST(${keyTextSql(src)} AS BINARY) IN (?)`;
}

/** Fills `hasDispatches` / `hasQuarantined` so page queries can leave out joins that cannot match. */
export async function probeLedger(pool: Pool, f: PendingFilter): Promise<PendingFilter> {
  const [d] = await pool.query<RowDataPacket[]>('SELECT 1 FROM sluice_dispatches WHERE pipeline = ? LIMIT 1', [
    f.pipeline,
  ]);
  const [x] = await pool.query<RowDataPacket[]>('SELECT 1 FROM sluice_dead_tasks WHERE pipeline = ? LIMIT 1', [
    f.pipeline,
  ]);
  return { ...f, hasDispatches: d.length > 0, hasQuarantined: x.length > 0 };
}

/** Integers go into the SQL as literals, so the range is on the integer key, not on a string. */
function cursorCondition(src: SourceInfo, after: string | undefined, params: unknown[]): string {
  return after === undefined ? '' : ` AND ${keyAfterSql(src, after, params)}`;
}

/** One page of pending tasks after `after` (a key's text form), in key order. */
export async function fetchPendingPage(
  pool: Pool,
  src: SourceInfo,
  f: PendingFilter,
  after: string | undefined,
  limit: number,
): Promise<PendingRow[]> {
  const params: unknown[] = [];
  const selected = src.columns.map((c) => `s.${quoteIdentifier(c)}`);
  const from = joins(src, f, params);
  const where = filters(f, from, params) + keysCondition(src, f.keys, params) + cursorCondition(src, after, params);
  params.push(limit);
  const sql = `SELECT ${keyTextSql(src)} AS ${K}, ${from.dispatches} AS ${N}, ${from.quarantined} AS ${D}${
    selected.length > 0 ? `, ${selected.join(', ')}` : ''
  }
  ${from.sql}
  ${where}
  ORDER BY ${keyOrderSql(src)}
  LIMIT ?`;
  // Arrays, not objects: one object per row (the payload) instead of three on the producer's hot path.
  // Dates as their text: payloads keep zero dates and have no time zone drift, whatever pool this is.
  const [rows] = await pool.query<RowDataPacket[][]>({ sql, rowsAsArray: true, dateStrings: true }, params);
  const cols = src.columns;
  return rows.map((r) => {
    const row: Record<string, unknown> = {};
    for (let i = 0; i < cols.length; i++) row[cols[i]!] = r[3 + i];
    const keyText = Buffer.isBuffer(r[0]) ? r[0].toString('utf8') : asText(r[0]);
    const parts = envelopeParts(src, keyText);
    return {
      key: envelopeKey(keyText, src.keyKind === 'int'),
      ...(parts === undefined ? {} : { parts }),
      keyText,
      previousDispatches: Number(r[1]),
      quarantined: Number(r[2]) === 1,
      row,
    };
  });
}
