// Dispatch records: what the producer published, when and in which run. Written after Kafka acknowledged
// a batch, so a crash in between republishes on the next run (a duplicate the workers absorb) rather
// than hiding a task that was never sent.

import { MAX_KEY_BYTES } from '../core/envelope.js';
import { jsonKeysTable } from '../user-tables/key-sql.js';
import type { Pool } from '../db/pool.js';

/** A task Kafka acknowledged: where its message is in the topic's log. */
export interface Acknowledged {
  keyText: string;
  partition: number;
  offset: string;
}

/**
 * Upserts one row per acknowledged message, with where Kafka put it. The rows travel as one JSON array
 * parameter ([key, partition, offset] each) expanded by JSON_TABLE: the same statement for any batch size, and
 * less database CPU than a multi-row VALUES list (the server parses one parameter, not one per value).
 */
export async function recordDispatches(
  pool: Pool,
  pipeline: string,
  runId: string,
  topic: string,
  acked: readonly Acknowledged[],
): Promise<void> {
  if (acked.length === 0) return;
  await pool.query(
    `INSERT INTO sluice_dispatches (pipeline, task_key, run_id, topic, ` +
      `dispatches, dispatched_at, kafka_partition, kafka_offset)
     SELECT ?, j.k, ?, ?, 1, NOW(3), j.p, j.o
     FROM ${jsonAckedTable('j')}
     ON DUPLICATE KEY UPDATE run_id = VALUES(run_id), topic = ` +
      `VALUES(topic),
       dispatches = dispatches + 1, dispatched_at = ` +
      `VALUES(dispatched_at),
       kafka_partition = VALUES(kafka_partition), kafka_offset = ` +
      `VALUES(kafka_offset)`,
    [pipeline, runId, topic, JSON.stringify(acked.map((a) => [a.keyText, a.partition, a.offset]))],
  );
}

/** Rows [key, partition, offset] of one JSON array parameter: columns k, p and o. */
function jsonAckedTable(alias: string): string {
  return (
    `JSON_TABLE(?, '$[*]' COLUMNS (k VARCHAR(${MAX_KEY_BYTES}) CHARACTER ` +
    `SET utf8mb4 PATH '$[0]', p INT PATH '$[1]', o BIGINT PATH ` +
    `'$[2]')) ${alias}`
  );
}

/**
 * Takes quarantined tasks out of quarantine for --retry-quarantined: their failures so far are marked superseded
 * (kept as history, no longer counted against the stage's attempt budget) and their quarantine row goes.
 */
export async function releaseQuarantined(pool: Pool, pipeline: string, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  const list = JSON.stringify(keys);
  const inKeys = `task_key IN (SELECT j.k FROM ${jsonKeysTable('j')})`;
  await pool.query(
    `UPDATE sluice_attempts SET superseded = TRUE WHERE pipeline = ? AND superseded = FALSE AND ${inKeys}`,
    [pipeline, list],
  );
  await pool.query(`DELETE FROM sluice_dead_tasks WHERE pipeline = ? AND ${inKeys}`, [pipeline, list]);
}

/**
 * Tasks taken out of quarantine are not in flight, however recently they were published: their dispatch
 * records are made stale, so the next produce publishes them (their publication count is kept).
 */
export async function expireDispatches(pool: Pool, pipeline: string, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await pool.query(
    `UPDATE sluice_dispatches SET dispatched_at = '2000-01-01 00:00:00' WHERE ` +
      `pipeline = ? AND task_key IN (SELECT j.k FROM ${jsonKeysTable('j')})`,
    [pipeline, JSON.stringify(keys)],
  );
}
