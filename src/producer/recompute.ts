// `produce --recompute`: the stale done tasks (ledger/stale.ts) as pages for the publishing loop, their count per
// stage and version for --dry-run, and --accept. The first check per stage and version (ledger/stage-versions.ts)
// answers "nothing stale" from the indexes, so a rerun with nothing stale reads no done task.

import { createHash } from 'node:crypto';
import type { PipelineConfig } from '../config/config.js';
import type { Pool } from '../db/pool.js';
import type { PendingRow } from '../ledger/pending.js';
import { acceptVersion, scanStale, staleRows, type StaleFilter, type StaleTask } from '../ledger/stale.js';
import { mayBeStale, registerStages, type StageVersionInfo } from '../ledger/stage-versions.js';
import type { SourceInfo } from '../user-tables/table-info.js';
import type { DbCall } from './db-retry.js';

export interface RecomputeOptions {
  /** Recompute the selected done tasks from this stage, whatever their versions (--from-stage). */
  fromStage?: string;
  /** Done tasks without milestones (an offline run's results) are stale from the first stage. */
  includeOffline?: boolean;
  /** Mark the code's version of this stage current for the selected tasks; nothing is published (--accept). */
  accept?: string;
  /** Tasks published per second at most. */
  ratePerSecond?: number;
  /** Publish only the stale tasks, not the pending ones first (the dashboard's recompute action). */
  staleOnly?: boolean;
}

/** Stale tasks per stage and the version they move from (null: the stage's milestone is missing). */
export interface StaleGroup {
  stage: string;
  from: string | null;
  to: string;
  tasks: number;
}

export interface RecomputeSummary {
  /** Stale tasks found (and, unless a dry run, published). */
  stale: number;
  groups: StaleGroup[];
  /** The index check found nothing stale: no done task was read. */
  checkedByIndex: boolean;
  /** Milestones marked current by --accept. */
  accepted: number;
  /** The stage --accept marked current (absent: a recompute). */
  acceptedStage?: string;
}

/** Source rows read per query of the scan. */
const CHUNK = 10_000;

export const stageVersions = (p: PipelineConfig): StageVersionInfo[] =>
  p.stages.map((s) => ({ name: s.name, version: s.version }));

export interface StaleRun {
  pool: Pool;
  db: DbCall;
  source: SourceInfo;
  filter: StaleFilter;
  /** Only some of the source's rows (--where): a pass that finds nothing says nothing of the others. */
  narrowed?: boolean;
}

/** Registers the code's stage versions, then whether a pass over the done tasks is needed at all. */
export async function prepareRecompute(r: StaleRun): Promise<boolean> {
  const { pool, filter: f } = r;
  await r.db('recording stage versions', () => registerStages(pool, f.pipeline, f.stages));
  // A forced stage or offline results concern tasks no index tells apart: only the pass finds them.
  if (f.fromStage !== undefined || f.includeOffline) return true;
  return r.db('checking for stale tasks', () => mayBeStale(pool, f.pipeline, f.stages, f.staleAfterMs));
}

/** Keys of a --keys-file looked up per query: each chunk names its keys, instead of every query naming them all. */
const KEYS_PER_QUERY = 1000;

/** The stale tasks, chunk by chunk of the source (a chunk may hold none); given keys, a slice of them at a time. */
export async function* staleChunks(r: StaleRun): AsyncGenerator<StaleTask[]> {
  const { keys } = r.filter;
  if (keys === undefined) {
    yield* chunksOf(r, r.filter);
    return;
  }
  for (let i = 0; i < keys.length; i += KEYS_PER_QUERY)
    yield* chunksOf(r, { ...r.filter, keys: keys.slice(i, i + KEYS_PER_QUERY) });
}

async function* chunksOf(r: StaleRun, filter: StaleFilter): AsyncGenerator<StaleTask[]> {
  let after: string | undefined;
  do {
    const at = after;
    const { stale, last } = await r.db('reading stale tasks', () => scanStale(r.pool, r.source, filter, at, CHUNK));
    if (stale.length > 0) yield stale;
    after = last;
  } while (after !== undefined);
}

/** The stale tasks as pages of the publishing loop, with their payloads. */
export async function* stalePages(r: StaleRun): AsyncGenerator<PendingRow[]> {
  for await (const tasks of staleChunks(r)) {
    const rows = await r.db('reading stale rows', () => staleRows(r.pool, r.source, tasks));
    if (rows.length > 0) yield rows;
  }
}

/** How many tasks are stale, per stage and old version (--dry-run). */
export async function countStale(r: StaleRun): Promise<StaleGroup[]> {
  return (await staleSet(r)).groups;
}

/**
 * The stale tasks counted per stage and old version, and a hash of the set (each key and its stage, in scan order):
 * what the dashboard's confirmation is checked against.
 */
export async function staleSet(
  r: StaleRun,
  collect = false,
): Promise<{ groups: StaleGroup[]; count: number; hash: string; keys: string[] }> {
  const keys: string[] = [];
  const to = new Map(r.filter.stages.map((s) => [s.name, s.version]));
  const groups = new Map<string, StaleGroup>();
  const h = createHash('sha256');
  let count = 0;
  for await (const tasks of staleChunks(r))
    for (const t of tasks) {
      count++;
      if (collect) keys.push(t.keyText);
      h.update(t.keyText).update('\u0000').update(t.fromStage).update('\u0000');
      const id = `${t.fromStage}\u0000${t.oldVersion ?? ''}`;
      const g = groups.get(id) ?? { stage: t.fromStage, from: t.oldVersion, to: to.get(t.fromStage)!, tasks: 0 };
      g.tasks++;
      groups.set(id, g);
    }
  const order = r.filter.stages.map((s) => s.name);
  return {
    groups: [...groups.values()].sort((a, b) => order.indexOf(a.stage) - order.indexOf(b.stage) || b.tasks - a.tasks),
    count,
    hash: h.digest('hex').slice(0, 16),
    keys,
  };
}

/** --accept: the stage's current version for the selected done tasks' milestones of it. */
export function accept(r: StaleRun, stage: StageVersionInfo): Promise<number> {
  return r.db('accepting the stage version', () => acceptVersion(r.pool, r.source, r.filter, stage, CHUNK));
}
