// The recompute scan: done tasks whose milestones are not all of the code's stage versions, read in keyset chunks of
// the source (WHERE key > :last ORDER BY key LIMIT :n) with each stage's milestone probed by its primary key. A task
// is stale from the first stage whose milestone is missing (an added stage) or of another version; from the stage a
// recompute request names when that request is no longer in flight (a lost message, a worker that died); from
// `fromStage` for every selected task when one is forced. Done tasks without any milestone (an offline run's results)
// are current unless they are included. Quarantined tasks are left out: a recompute never requeues them.

import type { RowDataPacket } from 'mysql2/promise';
import { envelopeKey } from '../core/envelope.js';
import { quoteIdentifier } from '../core/identifiers.js';
import { asText } from '../core/text.js';
import type { Pool } from '../db/pool.js';
import { doneJoin, keyTextSql, sourceFrom } from '../user-tables/key-sql.js';
import { envelopeParts, keyAfterSql, keyInSql, keyOrderSql } from '../user-tables/key-shape.js';
import type { SourceInfo } from '../user-tables/table-info.js';
import type { PendingRow } from './pending.js';
import type { StageVersionInfo } from './stage-versions.js';

export interface StaleFilter {
  pipeline: string;
  stages: readonly StageVersionInfo[];
  /** Recompute every selected done task from this stage (--from-stage), stale or not. */
  fromStage?: string;
  /** Done tasks with no milestone at all count as stale from the first stage (--include-offline). */
  includeOffline: boolean;
  /** A recompute published less than this long ago is in flight and left alone; null: none is (--all). */
  staleAfterMs: number | null;
  /** Only these tasks (canonical key text), when set (--keys-file). */
  keys?: readonly string[];
}

/** A stale done task: from which stage, and the version its milestone of that stage has (null: none). */
export interface StaleTask {
  keyText: string;
  fromStage: string;
  oldVersion: string | null;
  /** A recompute request no longer in flight is published again. */
  previousRequests: number;
  /** The stage runs even if its milestone is current (--from-stage, or such a request not carried out). */
  forced: boolean;
}

const text = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : asText(v));

/** Only these keys: by the key columns (so by the index), then byte for byte (a collation may match case variants). */
function keysCondition(src: SourceInfo, keys: readonly string[], params: unknown[]): string {
  const within = keyInSql(src, keys, params);
  if (within === 'FALSE' || src.parts.every((p) => p.kind !== 'string')) return ` AND ${within}`;
  params.push(keys);
  return ` AND ${within} AND CAST(${keyTextSql(src)} AS BINARY) IN (?)`;
}

/** The first stale stage's index in SQL (NULL: current), with its parameters. */
function staleIndex(f: StaleFilter): { sql: string; params: unknown[] } {
  const forced = f.fromStage === undefined ? -1 : f.stages.findIndex((s) => s.name === f.fromStage);
  const considered = forced < 0 ? f.stages : f.stages.slice(0, forced);
  const none = f.stages.map((_, i) => `m${i}.task_key IS NULL`).join(' AND ');
  const offline = f.includeOffline || forced >= 0 ? '0' : 'NULL';
  const params: unknown[] = [];
  const branches = considered.map((s, i) => {
    params.push(s.version);
    return `WHEN m${i}.task_key IS NULL OR m${i}.version <> ? THEN ${i}`;
  });
  return {
    sql: `CASE WHEN ${none} THEN ${offline} ${branches.join(' ')} ELSE ${forced < 0 ? 'NULL' : forced} END`,
    params,
  };
}

/**
 * One chunk of the source after `after`: the stale tasks in it, and the last key read (undefined at the end).
 * `chunk` done rows are read per call whatever is stale, so a pass over 10M current rows is as many short queries,
 * each returning a few short columns per row.
 */
export async function scanStale(
  pool: Pool,
  src: SourceInfo,
  f: StaleFilter,
  after: string | undefined,
  chunk: number,
): Promise<{ stale: StaleTask[]; last: string | undefined }> {
  const k = keyTextSql(src);
  const index = staleIndex(f);
  const params: unknown[] = [...index.params];
  const result = doneJoin(src, f.pipeline, params);
  const joins = f.stages.map((s, i) => {
    params.push(f.pipeline, s.name);
    return `LEFT JOIN sluice_milestones m${i} ON m${i}.pipeline = ? AND m${i}.task_key = ${k} AND m${i}.stage = ?`;
  });
  params.push(f.pipeline, f.pipeline);
  let where = `WHERE ${result.done} AND x.task_key IS NULL`;
  if (f.staleAfterMs !== null) {
    where += ' AND (c.task_key IS NULL OR c.requested_at <= NOW(3) - INTERVAL ? MICROSECOND)';
    params.push(f.staleAfterMs * 1000);
  }
  if (f.keys !== undefined) where += keysCondition(src, f.keys, params);
  if (after !== undefined) where += ` AND ${keyAfterSql(src, after, params)}`;
  params.push(chunk);
  const versions = f.stages.map((_, i) => `m${i}.version`).join(', ');
  const sql = `SELECT ${k} AS k, ${index.sql} AS st, c.from_stage AS c_from, COALESCE(c.dispatches, 0) AS c_n,
    COALESCE(c.forced, FALSE) AS c_forced, ${versions}
    FROM ${sourceFrom(src)}
    ${result.sql}
    ${joins.join('\n    ')}
    LEFT JOIN sluice_dead_tasks x ON x.pipeline = ? AND x.task_key = ${k}
    LEFT JOIN sluice_recomputes c ON c.pipeline = ? AND c.task_key = ${k}
    ${where}
    ORDER BY ${keyOrderSql(src)} LIMIT ?`;
  const [rows] = await pool.query<RowDataPacket[][]>({ sql, rowsAsArray: true }, params);
  const stale: StaleTask[] = [];
  const names = f.stages.map((s) => s.name);
  const forced = f.fromStage !== undefined;
  for (const r of rows) {
    const st = r[1] === null ? -1 : Number(r[1]);
    // An unfinished request from an earlier stage than the versions say wins: its stages are not done yet. One from
    // a stage the code no longer has starts at the first.
    const requested = r[2] === null ? -1 : Math.max(0, names.indexOf(text(r[2])));
    const from = st < 0 ? requested : requested < 0 ? st : Math.min(st, requested);
    if (from < 0) continue;
    const v = r[5 + from];
    stale.push({
      keyText: text(r[0]),
      fromStage: names[from]!,
      oldVersion: v === null || v === undefined ? null : text(v),
      previousRequests: Number(r[3]),
      forced: forced || (from === requested && Number(r[4]) === 1),
    });
  }
  const lastRow = rows[rows.length - 1];
  return { stale, last: rows.length < chunk || lastRow === undefined ? undefined : text(lastRow[0]) };
}

/** The payload rows of `keys` (stale tasks), as the producer publishes them: in key order. */
export async function staleRows(pool: Pool, src: SourceInfo, tasks: readonly StaleTask[]): Promise<PendingRow[]> {
  if (tasks.length === 0) return [];
  const params: unknown[] = [];
  const within = keyInSql(
    src,
    tasks.map((t) => t.keyText),
    params,
  );
  const cols = src.columns;
  const selected = cols.map((c) => `, s.${quoteIdentifier(c)}`).join('');
  const [rows] = await pool.query<RowDataPacket[][]>(
    {
      sql: `SELECT ${keyTextSql(src)}${selected} FROM ${sourceFrom(src)} WHERE ${within} ORDER BY ${keyOrderSql(src)}`,
      rowsAsArray: true,
      dateStrings: true,
    },
    params,
  );
  const wanted = new Map(tasks.map((t) => [t.keyText, t]));
  const out: PendingRow[] = [];
  for (const r of rows) {
    const keyText = text(r[0]);
    const task = wanted.get(keyText);
    // A case-insensitive key column can return a case variant too: only the very key is the task.
    if (task === undefined) continue;
    const row: Record<string, unknown> = {};
    for (let i = 0; i < cols.length; i++) row[cols[i]!] = r[1 + i];
    const parts = envelopeParts(src, keyText);
    out.push({
      key: envelopeKey(keyText, src.keyKind === 'int'),
      ...(parts === undefined ? {} : { parts }),
      keyText,
      previousDispatches: task.previousRequests,
      quarantined: false,
      recompute: { fromStage: task.fromStage, forced: task.forced },
      row,
    });
  }
  return out;
}

/**
 * Records the recompute requests of tasks about to be published (before they are: a worker that receives one must
 * find its request), with this run's id and the database's clock.
 */
export async function requestRecomputes(
  pool: Pool,
  pipeline: string,
  runId: string,
  tasks: ReadonlyArray<{ keyText: string; fromStage: string; forced: boolean }>,
): Promise<void> {
  if (tasks.length === 0) return;
  await pool.query(
    'INSERT INTO sluice_recomputes (pipeline, task_key, from_stage, forced, run_id, dispatches, requested_at) ' +
      `SELECT ?, j.k, j.s, j.f, ?, 1, NOW(3) FROM JSON_TABLE(?, '$[*]' COLUMNS (k VARCHAR(2048) CHARACTER SET ` +
      `utf8mb4 PATH '$[0]', s VARCHAR(64) PATH '$[1]', f INT PATH '$[2]')) j ON DUPLICATE KEY UPDATE ` +
      'from_stage = VALUES(from_stage), forced = VALUES(forced), run_id = VALUES(run_id), ' +
      'dispatches = dispatches + 1, requested_at = VALUES(requested_at)',
    [pipeline, runId, JSON.stringify(tasks.map((t) => [t.keyText, t.fromStage, t.forced ? 1 : 0]))],
  );
}

/**
 * Marks the code's version of `stage` as current for the selected done tasks (--accept): their milestones of that
 * stage take the version without anything run. In chunks of the source, like the scan; returns how many changed.
 */
export async function acceptVersion(
  pool: Pool,
  src: SourceInfo,
  f: Pick<StaleFilter, 'pipeline' | 'keys'>,
  stage: StageVersionInfo,
  chunk: number,
): Promise<number> {
  let accepted = 0;
  let after: string | undefined;
  for (;;) {
    const params: unknown[] = [];
    let where = '';
    if (f.keys !== undefined) where += keysCondition(src, f.keys, params);
    if (after !== undefined) where += ` AND ${keyAfterSql(src, after, params)}`;
    params.push(chunk);
    const [keys] = await pool.query<RowDataPacket[][]>(
      {
        sql:
          `SELECT ${keyTextSql(src)} FROM ${sourceFrom(src)} WHERE TRUE${where} ` +
          `ORDER BY ${keyOrderSql(src)} LIMIT ?`,
        rowsAsArray: true,
      },
      params,
    );
    if (keys.length === 0) break;
    const list = keys.map((r) => text(r[0]));
    const [res] = await pool.query<{ affectedRows: number } & RowDataPacket[]>(
      'UPDATE sluice_milestones SET replaced = version, version = ? ' +
        'WHERE pipeline = ? AND stage = ? AND version <> ? AND task_key IN (?)',
      [stage.version, f.pipeline, stage.name, stage.version, list],
    );
    accepted += Number((res as unknown as { affectedRows: number }).affectedRows);
    if (keys.length < chunk) break;
    after = list[list.length - 1];
  }
  return accepted;
}
