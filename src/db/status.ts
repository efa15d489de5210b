// The numbers behind `status`: all from the ledger tables and their indexes, cheap on large pipelines.

import type { RowDataPacket } from 'mysql2/promise';
import { estimateCounts, exactCounts, type PipelineCounts } from './counts.js';
import type { Pool } from './pool.js';
import type { SourceInfo } from './source.js';

export interface StageCount {
  stage: string;
  milestones: number;
  /** Milestones per second over the actual window of the last minute. */
  perSecond: number;
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

const rate = (n: unknown, spanS: unknown): number => Number(n ?? 0) / Math.min(RECENT_S, Math.max(1, Number(spanS ?? 0)));

/** `exact`: the semi-join over the source (status --check always); otherwise the ledger-only estimate. */
export async function ledgerStatus(pool: Pool, src: SourceInfo, pipeline: string, staleAfterMs: number, exact: boolean, lastStage?: string): Promise<LedgerStatus> {
  const filter = { pipeline, staleAfterMs, includeDead: false };
  const counts = exact ? await exactCounts(pool, src, filter) : await estimateCounts(pool, src, filter);
  // Rates are over the actual window: from the first result of the last minute to now, so a run of 10 s
  // reads 10 s worth of work, not a minute's (never under a second, so one result is not "1000/s").
  const [[d]] = await pool.query<RowDataPacket[]>(
    `SELECT COUNT(*) AS recent, COALESCE(TIMESTAMPDIFF(MICROSECOND, MIN(finished_at), NOW(3)), 0) / 1e6 AS span
     FROM sluice_results WHERE pipeline = ? AND finished_at > NOW(3) - INTERVAL ${RECENT_S} SECOND`,
    [pipeline],
  );
  const [stages] = await pool.query<RowDataPacket[]>(
    `SELECT stage, COUNT(*) AS n, COALESCE(SUM(created_at > NOW(3) - INTERVAL ${RECENT_S} SECOND), 0) AS recent,
       COALESCE(TIMESTAMPDIFF(MICROSECOND, MIN(IF(created_at > NOW(3) - INTERVAL ${RECENT_S} SECOND, created_at, NULL)), NOW(3)), 0) / 1e6 AS span
     FROM sluice_milestones WHERE pipeline = ? GROUP BY stage`,
    [pipeline],
  );
  const [errors] = await pool.query<RowDataPacket[]>(
    `SELECT error_class, COUNT(*) AS n, MAX(created_at) AS last_at, MAX(error_message) AS example
     FROM sluice_attempts WHERE pipeline = ? AND created_at > NOW(3) - INTERVAL 1 DAY
     GROUP BY error_class ORDER BY n DESC LIMIT 10`,
    [pipeline],
  );
  const [[bad]] = await pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sluice_bad_messages WHERE pipeline = ?', [pipeline]);
  return {
    counts,
    doneLastMinute: Number(d?.recent ?? 0),
    // With a user result table, sluice_results is not written: results arrive as fast as the last stage's milestones.
    resultsPerSecond: src.results === undefined ? rate(d?.recent, d?.span) : (() => {
      const last = stages.find((r) => String(r.stage) === lastStage);
      return last === undefined ? 0 : rate(last.recent, last.span);
    })(),
    stages: stages.map((r) => ({ stage: String(r.stage), milestones: Number(r.n), perSecond: rate(r.recent, r.span) })),
    errors: errors.map((r) => ({ errorClass: String(r.error_class), count: Number(r.n), lastAt: new Date(r.last_at as Date).toISOString(), example: String(r.example).slice(0, 200) })),
    badMessages: Number(bad?.n ?? 0),
  };
}
