// Records of messages the fetcher quarantined. Best effort: the spool's quarantine file is the primary
// record; the row makes them visible to `status` from any machine.

import type { Pool } from './pool.js';

export interface BadMessageRow {
  pipeline: string;
  topic: string;
  partition: number;
  offset: string;
  reason: string;
  detail: string;
  key: Buffer | null;
  size: number;
  fetcherId: string;
  spoolFile: string;
}

export async function recordBadMessages(pool: Pool, rows: readonly BadMessageRow[]): Promise<void> {
  if (rows.length === 0) return;
  await pool.query(
    `INSERT IGNORE INTO sluice_bad_messages
       (pipeline, topic, kafka_partition, kafka_offset, reason, detail, message_key, size, fetcher_id, spool_file)
     VALUES ?`,
    [rows.map((r) => [r.pipeline, r.topic, r.partition, r.offset, r.reason, r.detail.slice(0, 10_000), r.key === null ? null : r.key.subarray(0, 2048), r.size, r.fetcherId, r.spoolFile])],
  );
}
