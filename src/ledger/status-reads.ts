// The numbers behind `status`: all from the ledger tables and their indexes, cheap on large pipelines.

import type { RowDataPacket } from 'mysql2/promise';
import { estimateCounts, exactCounts, type PipelineCounts } from './counts.js';
import type { Pool } from '../db/pool.js';
import type { SourceInfo } from '../user-tables/table-info.js';

export interface StageCount {
  stage: string;
  milestones: number;
  /** Milestones per second over the actual window of the last minute. */
  perSecond: number;
  /** Failed tries in the last minute (each one retried or quarantined), and their share of all tries then. */
  failedLastMinute: number;
  retryRatio: number;
}

export interface ErrorGroup {
  errorClass: string;
  count: number;
  lastAt: string;
  example: string;
}

export interface LedgerStatus {
  counts: PipelineCounts;
  doneLastMinute: number;
  /** Results per second over the actual window (see ledgerStatus). */
  resultsPerSecond: number;
  stages: StageCount[];
  errors: ErrorGroup[];
  badMessages: number;
}

const RECENT_S = 60;

const rate = (n: unknown, spanS: unknown): number =>
  Number(n ?? 0) / Math.min(RECENT_S, Math.max(1, Number(spanS ?? 0)));

/**
 * `exact`: the semi-join over the source (status --check always); otherwise the snapshot plus the ledger
 * since (count-snapshots.ts). Either way, per-stage totals are the snapshot's plus the milestones since,
 * and every query reads an index range: nothing here grows with the source.
 */
export async function ledgerStatus(
  pool: Pool,
  src: SourceInfo,
  pipeline: string,
  staleAfterMs: number,
  exact: boolean,
  stageNames: readonly string[],
): Promise<LedgerStatus> {
  const filter = { pipeline, staleAfterMs, includeQuarantined: false };
  const counts = exact ? await exactCounts(pool, src, filter) : await estimateCounts(pool, src, filter, stageNames);
  // Rates are over the actual window: from the first result of the last minute to now, so a run of 10 s
  // reads 10 s worth of work, not a minute's (never under a second, so one result is not "1000/s").
  const [[d]] = await pool.query<RowDataPacket[]>(
    `SELECT COUNT(*) AS recent, COALESCE(TIMESTAMPDIFF(MICROSECOND, MIN(finished_at), NOW(3)), 0) / 1e6 AS span
     FROM sluice_results WHERE pipeline = ? AND finished_at > NOW(3) - INTERVAL ${RECENT_S} SECOND`,
    [pipeline],
  );
  const stages: Array<{ stage: string; n: number; recent: number; span: number }> = [];
  for (const stage of stageNames) {
    const [[r]] = await pool.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS recent, COALESCE(TIMESTAMPDIFF(MICROSECOND, MIN(created_at), NOW(3)), 0) / 1e6 AS span
       FROM sluice_milestones WHERE pipeline = ? AND stage = ? AND created_at > NOW(3) - INTERVAL ${RECENT_S} SECOND`,
      [pipeline, stage],
    );
    stages.push({ stage, n: counts.stages[stage] ?? 0, recent: Number(r?.recent ?? 0), span: Number(r?.span ?? 0) });
  }
  const [failed] = await pool.query<RowDataPacket[]>(
    `SELECT stage, COUNT(*) AS n FROM sluice_attempts WHERE pipeline = ? AND ` +
      `created_at > NOW(3) - INTERVAL ${RECENT_S} SECOND GROUP BY stage`,
    [pipeline],
  );
  const failures = new Map(failed.map((r) => [String(r.stage), Number(r.n)]));
  const [errors] = await pool.query<RowDataPacket[]>(
    `SELECT error_class, COUNT(*) AS n, MAX(created_at) AS last_at, MAX(error_message) AS example
     FROM sluice_attempts WHERE pipeline = ? AND created_at > NOW(3) - INTERVAL 1 DAY
     GROUP BY error_class ORDER BY n DESC LIMIT 10`,
    [pipeline],
  );
  const [[bad]] = await pool.query<RowDataPacket[]>(
    'SELECT COUNT(*) AS n FROM sluice_bad_messages WHERE pipeline = ?',
    [pipeline],
  );
  return {
    counts,
    doneLastMinute: Number(d?.recent ?? 0),
    // With a user result table, sluice_results is not written: results arrive as fast as the last stage's milestones.
    resultsPerSecond:
      src.results === undefined
        ? rate(d?.recent, d?.span)
        : (() => {
            const last = stages.at(-1);
            return last === undefined ? 0 : rate(last.recent, last.span);
          })(),
    stages: stages.map((r) => {
      const f = failures.get(r.stage) ?? 0;
      return {
        stage: r.stage,
        milestones: r.n,
        perSecond: rate(r.recent, r.span),
        failedLastMinute: f,
        retryRatio: f + r.recent === 0 ? 0 : f / (f + r.recent),
      };
    }),
    errors: errors.map((r) => ({
      errorClass: String(r.error_class),
      count: Number(r.n),
      lastAt: new Date(r.last_at as Date).toISOString(),
      example: String(r.example).slice(0, 200),
    })),
    badMessages: Number(bad?.n ?? 0),
  };
}
