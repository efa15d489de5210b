// What the ledger already knows about the tasks of a segment, read in one query per table before the
// segment is processed: finished tasks are skipped (a duplicate delivery), finished stages reuse their
// stored output, and attempt counts carry over from earlier runs and crashed workers.

import type { RowDataPacket } from 'mysql2/promise';
import type { Pool } from './pool.js';

export interface TaskState {
  done: Set<string>;
  dead: Set<string>;
  /** key -> stage -> stored output (JSON text). */
  milestones: Map<string, Map<string, string | null>>;
  /** `${key}\u0000${stage}` -> failures recorded so far. */
  failures: Map<string, number>;
}

const text = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));

export async function loadTaskState(pool: Pool, pipeline: string, keys: readonly string[]): Promise<TaskState> {
  const state: TaskState = { done: new Set(), dead: new Set(), milestones: new Map(), failures: new Map() };
  if (keys.length === 0) return state;
  const list = JSON.stringify(keys);
  // The keys travel as one JSON array (see dispatches.ts); a semi-join on it uses each table's primary key.
  const inKeys = `task_key IN (SELECT k FROM JSON_TABLE(?, '$[*]' COLUMNS (k VARCHAR(512) CHARACTER SET utf8mb4 PATH '$')) j)`;
  const [results] = await pool.query<RowDataPacket[]>(`SELECT task_key FROM sluice_results WHERE pipeline = ? AND ${inKeys}`, [pipeline, list]);
  for (const r of results) state.done.add(text(r.task_key));
  const [dead] = await pool.query<RowDataPacket[]>(`SELECT task_key FROM sluice_dead_tasks WHERE pipeline = ? AND ${inKeys}`, [pipeline, list]);
  for (const r of dead) state.dead.add(text(r.task_key));
  const [ms] = await pool.query<RowDataPacket[]>(`SELECT task_key, stage, output FROM sluice_milestones WHERE pipeline = ? AND ${inKeys}`, [pipeline, list]);
  for (const r of ms) {
    const key = text(r.task_key);
    const m = state.milestones.get(key) ?? new Map<string, string | null>();
    m.set(String(r.stage), r.output === null ? null : typeof r.output === 'string' ? r.output : JSON.stringify(r.output));
    state.milestones.set(key, m);
  }
  const [fails] = await pool.query<RowDataPacket[]>(
    `SELECT task_key, stage, COUNT(*) AS n FROM sluice_attempts WHERE pipeline = ? AND ${inKeys} GROUP BY task_key, stage`,
    [pipeline, list],
  );
  for (const r of fails) state.failures.set(`${text(r.task_key)}\u0000${String(r.stage)}`, Number(r.n));
  return state;
}
