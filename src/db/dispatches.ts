// Dispatch records: what the producer published, when and in which run. Written after Kafka acknowledged
// a batch, so a crash in between republishes on the next run (a duplicate the workers absorb) rather
// than hiding a task that was never sent.

import type { Pool } from './pool.js';

export async function recordDispatches(pool: Pool, pipeline: string, runId: string, topic: string, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  const params: unknown[] = [];
  for (const k of keys) params.push(pipeline, k, runId, topic);
  await pool.query(
    `INSERT INTO sluice_dispatches (pipeline, task_key, run_id, topic, dispatches, dispatched_at)
     VALUES ${keys.map(() => '(?, ?, ?, ?, 1, NOW(3))').join(', ')}
     ON DUPLICATE KEY UPDATE run_id = VALUES(run_id), topic = VALUES(topic),
       dispatches = dispatches + 1, dispatched_at = VALUES(dispatched_at)`,
    params,
  );
}

/** Quarantined tasks republished with --retry-dead leave quarantine: they are in flight again. */
export async function releaseDead(pool: Pool, pipeline: string, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await pool.query(`DELETE FROM sluice_dead_tasks WHERE pipeline = ? AND task_key IN (${keys.map(() => '?').join(', ')})`, [pipeline, ...keys]);
}
