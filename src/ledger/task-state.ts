// What the database already knows about the tasks of a segment, read before the segment is processed (the source,
// then the ledger's tables in one UNION ALL): which keys are in the source at all (a task for any other key is not
// run), finished tasks are skipped (a duplicate delivery), finished stages reuse their stored output, and attempt
// counts carry over from earlier runs and crashed workers (attempts superseded by --retry-quarantined do not), and
// done tasks that `produce --recompute` asked to run again are run, not skipped.

import type { RowDataPacket } from 'mysql2/promise';
import { quoteIdentifier } from '../core/identifiers.js';
import { jsonKeysTable, keyTextSql, sourceFrom } from '../user-tables/key-sql.js';
import { keyInSql, type KeyShape } from '../user-tables/key-shape.js';
import type { Pool } from '../db/pool.js';
import type { SourceInfo } from '../user-tables/table-info.js';
import type { ResultsInfo } from '../user-tables/table-info.js';
import { asResultKey, exactKeys } from '../user-tables/key-fit.js';

/** A finished stage of a task as the ledger holds it. */
export interface StoredMilestone {
  /** Its output as JSON text. */
  output: string | null;
  /** The stage's version that wrote it. */
  version: string;
  /** MD5 of `output` (lowercase hex); null on milestones older than the column. */
  hash: string | null;
  durationMs: number;
}

/** A recompute asked for by `produce --recompute` (sluice_recomputes): from which stage, by which run. */
export interface RecomputeRequest {
  fromStage: string;
  runId: string;
  /** --from-stage: `fromStage` runs even if its milestone is current. */
  forced: boolean;
}

export interface TaskState {
  /** Keys that have a source row (canonical text, compared byte for byte). */
  inSource: Set<string>;
  done: Set<string>;
  quarantined: Set<string>;
  /** key -> stage -> what the stage stored. */
  milestones: Map<string, Map<string, StoredMilestone>>;
  /** `${key}\u0000${stage}` -> failures recorded so far. */
  failures: Map<string, number>;
  /** Done tasks to run again (a missing entry: a done task is skipped). */
  recompute: Map<string, RecomputeRequest>;
}

const textOf = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));

const jsonText = (v: unknown): string | null =>
  v === null ? null : typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('utf8') : JSON.stringify(v);

/**
 * The keys among `keys` that `from` (a FROM item with alias s, keyed by `shape`'s columns) holds. Probed by the
 * table's own key index (key-shape.ts keyInSql). The canonical text of each row found is compared with the key
 * exactly, so a case-insensitive or PAD SPACE collation cannot let 'ABC' or 'abc ' stand for 'abc'.
 */
async function keysIn(pool: Pool, from: string, shape: KeyShape, keys: readonly string[]): Promise<Set<string>> {
  const found = new Set<string>();
  const params: unknown[] = [];
  const within = keyInSql(shape, keys, params);
  if (within === 'FALSE') return found;
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT ${keyTextSql(shape)} AS k FROM ${from} WHERE ${within}`,
    params,
  );
  const wanted = new Set(keys);
  for (const r of rows) {
    const k = textOf(r.k);
    if (wanted.has(k)) found.add(k);
  }
  return found;
}

/**
 * The keys among `keys` that have their row in the user's result table: the row of this very key, or,
 * when the user accepted merged keys (results.mergeKeys, one text column), the row its key merges with.
 */
export async function keysWithResult(pool: Pool, r: ResultsInfo, keys: readonly string[]): Promise<Set<string>> {
  if (exactKeys(r)) return keysIn(pool, `${quoteIdentifier(r.table)} s`, r, keys);
  const found = new Set<string>();
  if (keys.length === 0) return found;
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT j.k FROM ${jsonKeysTable('j')} WHERE EXISTS ` +
      `(SELECT 1 FROM ${quoteIdentifier(r.table)} u ` +
      `WHERE u.${quoteIdentifier(r.parts[0]!.column)} = ${asResultKey(r.parts[0]!.meta, 'j.k')})`,
    [JSON.stringify(keys)],
  );
  for (const row of rows) found.add(textOf(row.k));
  return found;
}

/** The keys among `keys` that have a source row the pipeline's filter selects. */
export function keysInSource(pool: Pool, src: SourceInfo, keys: readonly string[]): Promise<Set<string>> {
  return keysIn(pool, sourceFrom(src), src, keys);
}

/**
 * One segment's state in two round trips: which keys the source holds, then one UNION ALL over the ledger's
 * tables (results, quarantine, milestones, failed attempts), each branch a semi-join on the keys by its
 * primary key. With the user's result table, "done" is read from it in a third.
 */
export async function loadTaskState(
  pool: Pool,
  src: SourceInfo,
  pipeline: string,
  keys: readonly string[],
): Promise<TaskState> {
  const state: TaskState = {
    inSource: new Set(),
    done: new Set(),
    quarantined: new Set(),
    milestones: new Map(),
    failures: new Map(),
    recompute: new Map(),
  };
  if (keys.length === 0) return state;
  state.inSource = await keysInSource(pool, src, keys);
  const list = JSON.stringify([...new Set(keys)]);
  // The keys travel as one JSON array (see key-sql.ts), read first (STRAIGHT_JOIN) so that each table is probed by
  // its key at those keys. Left to itself, the planner took a ref on `pipeline` alone and filtered by the keys: every
  // row of the pipeline read per segment, so a run got slower the more it had done (bench:recompute).
  const from = (table: string): string =>
    `FROM ${jsonKeysTable('j')} STRAIGHT_JOIN ${table} x ON x.pipeline = ? AND x.task_key = j.k`;
  const branches = [
    `SELECT 'x' AS t, x.task_key, NULL AS stage, NULL AS output, 0 AS n, NULL AS v ${from('sluice_dead_tasks')}`,
    `SELECT 'm', x.task_key, x.stage, x.output, x.duration_ms, ` +
      `CONCAT(x.version, ' ', COALESCE(LOWER(HEX(x.output_hash)), '')) ${from('sluice_milestones')}`,
    `SELECT 'a', x.task_key, x.stage, NULL, COUNT(*), NULL ${from('sluice_attempts')} ` +
      'WHERE x.superseded = FALSE GROUP BY x.task_key, x.stage',
    `SELECT 'c', x.task_key, x.from_stage, NULL, x.forced, x.run_id ${from('sluice_recomputes')}`,
  ];
  // Done means a row in the user's result table, however it got there (an earlier offline run too).
  if (src.results === undefined)
    branches.unshift(
      `SELECT 'r' AS t, x.task_key, NULL AS stage, NULL AS output, 0 AS n, NULL AS v ${from('sluice_results')}`,
    );
  else state.done = await keysWithResult(pool, src.results, keys);
  const [rows] = await pool.query<RowDataPacket[]>(
    branches.join('\nUNION ALL '),
    branches.flatMap(() => [list, pipeline]),
  );
  for (const r of rows) {
    const key = textOf(r.task_key);
    switch (String(r.t)) {
      case 'r':
        state.done.add(key);
        break;
      case 'x':
        state.quarantined.add(key);
        break;
      case 'm': {
        const m = state.milestones.get(key) ?? new Map<string, StoredMilestone>();
        // Version and hash in one column of the UNION: split at the last space (a hash has none).
        const vh = textOf(r.v);
        const cut = vh.lastIndexOf(' ');
        const hash = vh.slice(cut + 1);
        m.set(textOf(r.stage), {
          output: jsonText(r.output),
          version: vh.slice(0, cut),
          hash: hash === '' ? null : hash,
          durationMs: Number(r.n),
        });
        state.milestones.set(key, m);
        break;
      }
      case 'c':
        state.recompute.set(key, { fromStage: textOf(r.stage), runId: textOf(r.v), forced: Number(r.n) === 1 });
        break;
      case 'a':
        state.failures.set(`${key}\u0000${textOf(r.stage)}`, Number(r.n));
        break;
    }
  }
  return state;
}
