// How far a pipeline is, by the one definition of done (docs/tables.md): a source row is done
// when a result exists for its key. Results for keys that are not in the source (a row deleted after it
// was done, a message from elsewhere) are counted apart, as `orphans`, never as done.
//
// `exactCounts` is the semi-join over the whole source: the truth, as costly as a full anti-join pass
// (about 2.4 s per million rows on MariaDB 10.11 here). `produce --dry-run`, `status --check`, and `status`
// on a source under a million rows use it. `estimateCounts` is a snapshot of whole-table counts plus the
// ledger's milestones since (count-snapshots.ts says how exact that is); everything that shows it says that
// it is an estimate, and when it was counted.

import type { RowDataPacket } from 'mysql2/promise';
import {
  readSnapshot,
  resultRows,
  saveSnapshot,
  stageRows,
  stageRowsSince,
  takeSnapshot,
  withReadView,
} from './count-snapshots.js';
import { joins, type PendingFilter } from './pending.js';
import type { Pool } from '../db/pool.js';
import type { SourceInfo } from '../user-tables/table-info.js';

export interface PipelineCounts {
  /** Source rows (every row of the source table is a task). */
  source: number;
  /** Source rows with a result. */
  done: number;
  /** Source rows without a result: source - done. */
  missing: number;
  /** ...of which dispatched less than staleAfter ago and not quarantined: in flight. */
  inFlight: number;
  /** ...of which quarantined. */
  quarantined: number;
  /** @deprecated The name `quarantined` had before 2026-12, kept for scripts that read it. */
  dead: number;
  /** ...the rest: what a produce run would publish (with --retry-quarantined, quarantined ones too). */
  pending: number;
  /** Results whose key has no source row: reported, never counted as done. */
  orphans: number;
  /**
   * Done source rows whose result row is another's too (only with results.mergeKeys): done minus the rows they share.
   */
  shared: number;
  /** Whether these are exact (the semi-join) or an estimate (a snapshot plus the ledger since). */
  exact: boolean;
  /** Milestones per stage (for the estimate: the snapshot's plus those since). */
  stages: Record<string, number>;
  /** When the whole-table counts were taken (the database's clock), and how long ago. */
  countedAt: string;
  countAgeSeconds: number;
}

export async function exactCounts(pool: Pool, src: SourceInfo, f: PendingFilter): Promise<PipelineCounts> {
  const t0 = performance.now();
  const { row, results, stages, at } = await withReadView(pool, async (conn, at) => {
    const params: unknown[] = [];
    const recent = f.staleAfterMs === null ? 'FALSE' : 'd.dispatched_at > NOW(3) - INTERVAL ? MICROSECOND';
    if (f.staleAfterMs !== null) params.push(f.staleAfterMs * 1000);
    const from = joins(src, { ...f, hasDispatches: undefined, hasQuarantined: undefined }, params);
    const [[row]] = await conn.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS source,
         COALESCE(SUM(${from.done}), 0) AS ` +
        `done,
         COALESCE(SUM(NOT (${from.done}) AND x.task_key IS NOT ` +
        `NULL), 0) AS quarantined,
         COALESCE(SUM(NOT (${from.done}) AND ` +
        `x.task_key IS NULL AND d.task_key IS NOT NULL AND ${recent}), 0) AS ` +
        `in_flight,
 ` +
        `        ${from.merged === null ? `COALESCE(SUM(${from.done}), 0)` : `COUNT(DISTINCT ${from.merged})`} ` +
        `AS matched
       ${from.sql}`,
      params,
    );
    return { row, results: await resultRows(conn, src, f.pipeline), stages: await stageRows(conn, f.pipeline), at };
  });
  const source = Number(row?.source ?? 0);
  const done = Number(row?.done ?? 0);
  const quarantined = Number(row?.quarantined ?? 0);
  const inFlight = Number(row?.in_flight ?? 0);
  const missing = source - done;
  // Each source row matches at most one result and each result at most one row (unique keys, one text
  // per key), so the results that matched no row are exactly the rest; with merged keys a result row
  // may be matched by several source rows, and counts once.
  const matched = Number(row?.matched ?? done);
  const orphans = results - matched;
  const shared = done - matched;
  await saveSnapshot(pool, f.pipeline, {
    source,
    done,
    shared,
    stages,
    exact: true,
    countedAt: at,
    tookMs: Math.round(performance.now() - t0),
  });
  return {
    source,
    done,
    missing,
    inFlight,
    quarantined,
    dead: quarantined,
    pending: missing - inFlight - (f.includeQuarantined ? 0 : quarantined),
    orphans,
    shared,
    exact: true,
    stages,
    countedAt: at,
    countAgeSeconds: 0,
  };
}

/**
 * The fast counts (count-snapshots.ts): the last snapshot (taken now when there is none, or when `refresh`)
 * plus the milestones of each of `stageNames` since (done: the last stage's); quarantined and in-flight
 * tasks from their own small tables.
 */
export async function estimateCounts(
  pool: Pool,
  src: SourceInfo,
  f: PendingFilter,
  stageNames: readonly string[],
  opts: { refresh?: boolean } = {},
): Promise<PipelineCounts> {
  const snap =
    (opts.refresh === true ? null : await readSnapshot(pool, f.pipeline)) ??
    (await takeSnapshot(pool, src, f.pipeline));
  const sinceByStage = await stageRowsSince(pool, f.pipeline, stageNames, snap.countedAt);
  const last = stageNames.at(-1);
  const since = last === undefined ? 0 : (sinceByStage[last] ?? 0);
  const stages = Object.fromEntries(stageNames.map((st) => [st, (snap.stages[st] ?? 0) + (sinceByStage[st] ?? 0)]));
  // With the user's result table, done tasks are not in sluice_results: these two are then bounded by what
  // is missing (below) instead of joined with a table of another key type.
  const ownResults = src.results === undefined;
  const noResult = ownResults
    ? 'LEFT JOIN sluice_results r ON r.pipeline = t.pipeline AND r.task_key = t.task_key'
    : '';
  const [[quarantined]] = await pool.query<RowDataPacket[]>(
    `SELECT COUNT(*) AS n FROM sluice_dead_tasks t ${noResult} WHERE ` +
      `t.pipeline = ?${ownResults ? ' AND r.task_key IS NULL' : ''}`,
    [f.pipeline],
  );
  let inFlight = 0;
  if (f.staleAfterMs !== null) {
    // Only the dispatches of the last staleAfter: a range of (pipeline, dispatched_at), however many there are.
    const [[row]] = await pool.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n FROM sluice_dispatches t ${noResult}
       LEFT JOIN sluice_dead_tasks x ON x.pipeline = t.pipeline AND ` +
        `x.task_key = t.task_key
       WHERE t.pipeline = ? AND t.dispatched_at > NOW(3) - INTERVAL ? ` +
        `MICROSECOND AND x.task_key IS NULL${ownResults ? ' AND r.task_key IS NULL' : ''}`,
      [f.pipeline, f.staleAfterMs * 1000],
    );
    inFlight = Number(row?.n ?? 0);
  }
  const source = snap.source;
  const done = Math.min(source, snap.done + since);
  const missing = source - done;
  const quarantinedN = Math.min(missing, Number(quarantined?.n ?? 0));
  inFlight = Math.min(missing - quarantinedN, inFlight);
  return {
    source,
    done,
    missing,
    inFlight,
    quarantined: quarantinedN,
    dead: quarantinedN,
    pending: Math.max(0, missing - inFlight - (f.includeQuarantined ? 0 : quarantinedN)),
    orphans: 0,
    shared: snap.shared,
    exact: false,
    stages,
    countedAt: snap.countedAt,
    countAgeSeconds: snap.ageSeconds,
  };
}
