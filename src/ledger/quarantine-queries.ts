// The dashboard's quarantine queries: quarantined tasks by filter, on the ledger's (pipeline, ...) keys and
// (pipeline, quarantined_at) index. (Stage charts: stage-series.ts.)

import type { RowDataPacket } from 'mysql2/promise';
import type { Pool } from '../db/pool.js';

export interface QuarantineFilter {
  /** A key, exactly (its canonical text). */
  key?: string;
  errorClass?: string;
  stage?: string;
  /** ISO-8601 bounds of the quarantine time. */
  since?: string;
  until?: string;
}

function where(pipeline: string, f: QuarantineFilter): { sql: string; params: unknown[] } {
  const parts = ['pipeline = ?'];
  const params: unknown[] = [pipeline];
  if (f.key !== undefined) {
    parts.push('task_key = CAST(? AS BINARY)');
    params.push(f.key);
  }
  if (f.errorClass !== undefined) {
    parts.push('error_class = ?');
    params.push(f.errorClass);
  }
  if (f.stage !== undefined) {
    parts.push('stage = ?');
    params.push(f.stage);
  }
  if (f.since !== undefined) {
    parts.push('quarantined_at >= ?');
    params.push(new Date(f.since));
  }
  if (f.until !== undefined) {
    parts.push('quarantined_at < ?');
    params.push(new Date(f.until));
  }
  return { sql: parts.join(' AND '), params };
}

export interface QuarantinedTask {
  key: string;
  stage: string | null;
  errorClass: string;
  errorMessage: string;
  attempts: number;
  quarantinedAt: string;
}

export async function quarantined(
  pool: Pool,
  pipeline: string,
  f: QuarantineFilter,
  limit = 200,
): Promise<{ total: number; tasks: QuarantinedTask[]; classes: Array<{ errorClass: string; count: number }> }> {
  const w = where(pipeline, f);
  const [[count]] = await pool.query<RowDataPacket[]>(
    `SELECT COUNT(*) AS n FROM sluice_dead_tasks WHERE ${w.sql}`,
    w.params,
  );
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT CONVERT(task_key USING utf8mb4) AS k, stage, error_class, ` +
      `error_message, attempts, quarantined_at FROM ` +
      `sluice_dead_tasks WHERE ${w.sql} ORDER BY quarantined_at DESC LIMIT ?`,
    [...w.params, limit],
  );
  const [classes] = await pool.query<RowDataPacket[]>(
    'SELECT error_class, COUNT(*) AS n FROM sluice_dead_tasks WHERE pipeline = ? GROUP BY error_class ORDER BY n DESC',
    [pipeline],
  );
  return {
    total: Number(count?.n ?? 0),
    tasks: rows.map((r) => ({
      key: String(r.k),
      stage: r.stage === null ? null : String(r.stage),
      errorClass: String(r.error_class),
      errorMessage: String(r.error_message),
      attempts: Number(r.attempts),
      quarantinedAt: (r.quarantined_at as Date).toISOString(),
    })),
    classes: classes.map((r) => ({ errorClass: String(r.error_class), count: Number(r.n) })),
  };
}

/** Keys of every quarantined task matching the filter (for a requeue). */
export async function quarantinedKeys(pool: Pool, pipeline: string, f: QuarantineFilter): Promise<string[]> {
  const w = where(pipeline, f);
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT CONVERT(task_key USING utf8mb4) AS k FROM sluice_dead_tasks WHERE ${w.sql}`,
    w.params,
  );
  return rows.map((r) => String(r.k));
}
