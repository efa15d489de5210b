// What a finished run left in the ledger, for a summary printed after it (the demo's): the learned limit of a
// resource, the failed attempts and the milestones per stage of a pipeline, and how many of the source's
// first keys are quarantined.

import type { RowDataPacket } from 'mysql2/promise';
import { quoteIdentifier } from '../core/identifiers.js';
import type { Pool } from '../db/pool.js';

export interface RunSummary {
  /** The resource's learned limit now (null: fixed, or never learned). */
  learnedLimit: number | null;
  /** Failed attempts recorded for the pipeline. */
  retries: number;
  milestones: Record<string, number>;
}

export async function runSummary(pool: Pool, pipeline: string, resource: string): Promise<RunSummary> {
  const [limits] = await pool.query<RowDataPacket[]>('SELECT learned_limit FROM sluice_resources WHERE name = ?', [
    resource,
  ]);
  const [retries] = await pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sluice_attempts WHERE pipeline = ?', [
    pipeline,
  ]);
  const [ms] = await pool.query<RowDataPacket[]>(
    'SELECT stage, COUNT(*) AS n FROM sluice_milestones WHERE pipeline = ? GROUP BY stage',
    [pipeline],
  );
  const limit = limits[0]?.learned_limit as number | null | undefined;
  return {
    learnedLimit: limit === undefined || limit === null ? null : Number(limit),
    retries: Number(retries[0]?.n ?? 0),
    milestones: Object.fromEntries(ms.map((r) => [String(r.stage), Number(r.n)])),
  };
}

/** Quarantined tasks of `pipeline` whose integer key in `table` is at most `upTo`. */
export async function quarantinedUpTo(
  pool: Pool,
  pipeline: string,
  source: { table: string; key: string | readonly string[] },
  upTo: number,
): Promise<number> {
  const key = quoteIdentifier(typeof source.key === 'string' ? source.key : source.key[0]!);
  const [[r]] = await pool.query<RowDataPacket[]>(
    `SELECT COUNT(*) AS n FROM ` +
      `sluice_dead_tasks x JOIN ${quoteIdentifier(source.table)} d ON ` +
      `x.task_key = CONVERT(d.${key} USING utf8mb4)
      WHERE x.pipeline = ` +
      `? AND d.${key} <= ?`,
    [pipeline, upTo],
  );
  return Number(r?.n ?? 0);
}
