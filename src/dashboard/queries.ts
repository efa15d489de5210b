// The dashboard's own queries: stage throughput and latency over time, quarantined tasks by filter. All on
// the ledger's indexes ((pipeline, stage, created_at) and (pipeline, quarantined_at)), over bounded windows.

import type { RowDataPacket } from 'mysql2/promise';
import type { Pool } from '../db/pool.js';

export interface StagePoint {
  /** Start of the bucket, ISO-8601. */
  at: string;
  done: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

/** Per stage, milestones per bucket over the last `minutes`, with latency percentiles. */
export async function stageSeries(pool: Pool, pipeline: string, stages: readonly string[], minutes = 30, bucketS = 10): Promise<Record<string, StagePoint[]>> {
  const out: Record<string, StagePoint[]> = {};
  for (const stage of stages) {
    const [rows] = await pool.query<RowDataPacket[]>(
      `SELECT b, COUNT(*) AS n, MAX(p50) AS p50, MAX(p99) AS p99 FROM (
         SELECT FLOOR(UNIX_TIMESTAMP(created_at) / ?) * ? AS b,
                PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY duration_ms) OVER (PARTITION BY FLOOR(UNIX_TIMESTAMP(created_at) / ?)) AS p50,
                PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY duration_ms) OVER (PARTITION BY FLOOR(UNIX_TIMESTAMP(created_at) / ?)) AS p99
           FROM sluice_milestones WHERE pipeline = ? AND stage = ? AND created_at >= NOW(3) - INTERVAL ? MINUTE) x
       GROUP BY b ORDER BY b`,
      [bucketS, bucketS, bucketS, bucketS, pipeline, stage, minutes],
    );
    out[stage] = rows.map((r) => ({ at: new Date(Number(r.b) * 1000).toISOString(), done: Number(r.n), p50Ms: r.p50 === null ? null : Number(r.p50), p99Ms: r.p99 === null ? null : Number(r.p99) }));
  }
  return out;
}

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
  if (f.key !== undefined) (parts.push('task_key = CAST(? AS BINARY)'), params.push(f.key));
  if (f.errorClass !== undefined) (parts.push('error_class = ?'), params.push(f.errorClass));
  if (f.stage !== undefined) (parts.push('stage = ?'), params.push(f.stage));
  if (f.since !== undefined) (parts.push('quarantined_at >= ?'), params.push(new Date(f.since)));
  if (f.until !== undefined) (parts.push('quarantined_at < ?'), params.push(new Date(f.until)));
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

export async function quarantined(pool: Pool, pipeline: string, f: QuarantineFilter, limit = 200): Promise<{ total: number; tasks: QuarantinedTask[]; classes: Array<{ errorClass: string; count: number }> }> {
  const w = where(pipeline, f);
  const [[count]] = await pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM sluice_dead_tasks WHERE ${w.sql}`, w.params);
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT CONVERT(task_key USING utf8mb4) AS k, stage, error_class, error_message, attempts, quarantined_at FROM sluice_dead_tasks WHERE ${w.sql} ORDER BY quarantined_at DESC LIMIT ?`,
    [...w.params, limit],
  );
  const [classes] = await pool.query<RowDataPacket[]>('SELECT error_class, COUNT(*) AS n FROM sluice_dead_tasks WHERE pipeline = ? GROUP BY error_class ORDER BY n DESC', [pipeline]);
  return {
    total: Number(count?.n ?? 0),
    tasks: rows.map((r) => ({ key: String(r.k), stage: r.stage === null ? null : String(r.stage), errorClass: String(r.error_class), errorMessage: String(r.error_message), attempts: Number(r.attempts), quarantinedAt: (r.quarantined_at as Date).toISOString() })),
    classes: classes.map((r) => ({ errorClass: String(r.error_class), count: Number(r.n) })),
  };
}

/** Keys of every quarantined task matching the filter (for a requeue). */
export async function quarantinedKeys(pool: Pool, pipeline: string, f: QuarantineFilter): Promise<string[]> {
  const w = where(pipeline, f);
  const [rows] = await pool.query<RowDataPacket[]>(`SELECT CONVERT(task_key USING utf8mb4) AS k FROM sluice_dead_tasks WHERE ${w.sql}`, w.params);
  return rows.map((r) => String(r.k));
}
