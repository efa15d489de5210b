// Records of messages the fetcher quarantined. Best effort: the spool's quarantine file is the primary
// record; the row makes them visible to `status` from any machine.

import { COLUMN_BYTES, cutBytes } from '../core/text.js';
import { MAX_KEY_BYTES } from '../core/envelope.js';
import type { Pool } from '../db/pool.js';

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
    [
      rows.map((r) => [
        r.pipeline,
        r.topic,
        r.partition,
        r.offset,
        cutBytes(r.reason, COLUMN_BYTES.reason),
        cutBytes(r.detail, COLUMN_BYTES.text),
        r.key === null ? null : r.key.subarray(0, MAX_KEY_BYTES),
        r.size,
        cutBytes(r.fetcherId, COLUMN_BYTES.workerId),
        cutBytes(r.spoolFile, COLUMN_BYTES.spoolFile),
      ]),
    ],
  );
}
