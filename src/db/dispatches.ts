// Dispatch records: what the producer published, when and in which run. Written after Kafka acknowledged
// a batch, so a crash in between republishes on the next run (a duplicate the workers absorb) rather
// than hiding a task that was never sent.

import { jsonKeysTable } from './key-sql.js';
import type { Pool } from './pool.js';

/**
 * Upserts one row per key. The keys travel as one JSON array parameter expanded by JSON_TABLE: the same
 * statement for any batch size, and ~35% less database CPU than a multi-row VALUES list (measured: 0.42 s
 * against 0.64 s per 200k rows on MariaDB 10.11).
 */
export async function recordDispatches(pool: Pool, pipeline: string, runId: string, topic: string, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await pool.query(
    `INSERT INTO sluice_dispatches (pipeline, task_key, run_id, topic, dispatches, dispatched_at)
     SELECT ?, j.k, ?, ?, 1, NOW(3)
     FROM ${jsonKeysTable('j')}
     ON DUPLICATE KEY UPDATE run_id = VALUES(run_id), topic = VALUES(topic),
       dispatches = dispatches + 1, dispatched_at = VALUES(dispatched_at)`,
    [pipeline, runId, topic, JSON.stringify(keys)],
  );
}

/**
 * Takes quarantined tasks out of quarantine for --retry-dead: their failures so far are marked superseded
 * (kept as history, no longer counted against the stage's attempt budget) and their quarantine row goes.
 */
export async function releaseDead(pool: Pool, pipeline: string, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  const list = JSON.stringify(keys);
  const inKeys = `task_key IN (SELECT j.k FROM ${jsonKeysTable('j')})`;
  await pool.query(`UPDATE sluice_attempts SET superseded = TRUE WHERE pipeline = ? AND superseded = FALSE AND ${inKeys}`, [pipeline, list]);
  await pool.query(`DELETE FROM sluice_dead_tasks WHERE pipeline = ? AND ${inKeys}`, [pipeline, list]);
}

/**
 * Tasks taken out of quarantine are not in flight, however recently they were published: their dispatch
 * records are made stale, so the next produce publishes them (their publication count is kept).
 */
export async function expireDispatches(pool: Pool, pipeline: string, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await pool.query(`UPDATE sluice_dispatches SET dispatched_at = '2000-01-01 00:00:00' WHERE pipeline = ? AND task_key IN (SELECT j.k FROM ${jsonKeysTable('j')})`, [pipeline, JSON.stringify(keys)]);
}
