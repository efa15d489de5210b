// Which version of each stage wrote the ledger's milestones, read from the (pipeline, stage, version) index: the
// version mix status shows, and the first check of `produce --recompute` that answers "nothing stale" without a pass
// over the done tasks. A stage first seen after some milestones were written (an added stage) is missing from those
// tasks: sluice_stage_versions says since when each stage exists.

import type { RowDataPacket } from 'mysql2/promise';
import type { Pool } from '../db/pool.js';

export interface StageVersionInfo {
  name: string;
  version: string;
}

/** Milestones of one stage by another version than the code's, per version. */
export interface StageMix {
  stage: string;
  version: string;
  /** Milestones written by other versions: {version, count}, most first. */
  others: Array<{ version: string; count: number }>;
  /** Their sum: tasks stale from this stage (done or not) by its version alone. */
  stale: number;
}

/** Records that these versions exist from now on (the first time each is seen); idempotent. */
export async function registerStages(pool: Pool, pipeline: string, stages: readonly StageVersionInfo[]): Promise<void> {
  // The database's clock, as the milestones' created_at it is compared with.
  for (const s of stages)
    await pool.query(
      'INSERT IGNORE INTO sluice_stage_versions (pipeline, stage, version, first_seen_at) VALUES (?, ?, ?, NOW(3))',
      [pipeline, s.name, s.version],
    );
}

/** Per stage: the milestones other versions wrote (an index range each; nothing to read when all are current). */
export async function stageMix(pool: Pool, pipeline: string, stages: readonly StageVersionInfo[]): Promise<StageMix[]> {
  const mix: StageMix[] = [];
  for (const s of stages) {
    const [rows] = await pool.query<RowDataPacket[]>(
      'SELECT version, COUNT(*) AS n FROM sluice_milestones WHERE pipeline = ? AND stage = ? AND version <> ? ' +
        'GROUP BY version ORDER BY n DESC',
      [pipeline, s.name, s.version],
    );
    const others = rows.map((r) => ({ version: String(r.version), count: Number(r.n) }));
    mix.push({ stage: s.name, version: s.version, others, stale: others.reduce((n, o) => n + o.count, 0) });
  }
  return mix;
}

const exists = async (pool: Pool, sql: string, params: unknown[]): Promise<boolean> => {
  const [rows] = await pool.query<RowDataPacket[]>(`SELECT EXISTS(${sql}) AS e`, params);
  return Number(rows[0]?.e) === 1;
};

/**
 * Whether any done task may be stale: a milestone of another version, a stage added after milestones of the others
 * were written, or a recompute no longer in flight. Index probes only; false means nothing is stale (true may still
 * find nothing: the milestones of tasks not done count here).
 */
export async function mayBeStale(
  pool: Pool,
  pipeline: string,
  stages: readonly StageVersionInfo[],
  staleAfterMs: number | null,
): Promise<boolean> {
  for (const s of stages) {
    const sql = 'SELECT 1 FROM sluice_milestones WHERE pipeline = ? AND stage = ? AND version <> ?';
    if (await exists(pool, sql, [pipeline, s.name, s.version])) return true;
  }
  const recomputes =
    staleAfterMs === null
      ? ['SELECT 1 FROM sluice_recomputes WHERE pipeline = ?', [pipeline]]
      : [
          'SELECT 1 FROM sluice_recomputes WHERE pipeline = ? AND requested_at <= NOW(3) - INTERVAL ? MICROSECOND',
          [pipeline, staleAfterMs * 1000],
        ];
  if (await exists(pool, recomputes[0] as string, recomputes[1] as unknown[])) return true;
  for (const s of stages) {
    const [rows] = await pool.query<RowDataPacket[]>(
      'SELECT MIN(first_seen_at) AS since FROM sluice_stage_versions WHERE pipeline = ? AND stage = ?',
      [pipeline, s.name],
    );
    const since = rows[0]?.since as Date | null | undefined;
    for (const other of stages) {
      if (other.name === s.name) continue;
      const older =
        since == null
          ? 'SELECT 1 FROM sluice_milestones WHERE pipeline = ? AND stage = ?'
          : 'SELECT 1 FROM sluice_milestones WHERE pipeline = ? AND stage = ? AND created_at < ?';
      if (await exists(pool, older, [pipeline, other.name, since])) return true;
    }
  }
  return false;
}

/**
 * Every done task has every one of these stages (a pass over them all found none stale, and no recompute is open):
 * each stage counts as there since the pipeline's first milestone, so the added-stage check finds nothing until a
 * stage is added again.
 */
export async function markStagesPresent(
  pool: Pool,
  pipeline: string,
  stages: readonly StageVersionInfo[],
): Promise<void> {
  const [open] = await pool.query<RowDataPacket[]>('SELECT 1 FROM sluice_recomputes WHERE pipeline = ? LIMIT 1', [
    pipeline,
  ]);
  if (open.length > 0) return;
  let first: Date | null = null;
  for (const s of stages) {
    const [rows] = await pool.query<RowDataPacket[]>(
      'SELECT MIN(created_at) AS first FROM sluice_milestones WHERE pipeline = ? AND stage = ?',
      [pipeline, s.name],
    );
    const at = rows[0]?.first as Date | null | undefined;
    if (at != null && (first === null || at < first)) first = at;
  }
  if (first === null) return;
  await pool.query(
    'UPDATE sluice_stage_versions SET first_seen_at = ? WHERE pipeline = ? AND stage IN (?) AND first_seen_at > ?',
    [first, pipeline, stages.map((s) => s.name), first],
  );
}
