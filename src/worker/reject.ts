// Tasks whose key has no source row are not run: the ledger's "done" counts source rows only, so their
// result would count for nothing, and the row they were made for may be gone. They are recorded as bad
// messages (reason not-in-source) in the database and kept in the spool's quarantine, like the fetcher's.

import { recordBadMessages } from '../db/bad-messages.js';
import type { Pool } from '../db/pool.js';
import type { SpoolItem } from '../spool/segment.js';
import { taskEntry, type QuarantineWriter } from '../spool/quarantine.js';
import type { Logger } from '../core/logger.js';

export interface RejectContext {
  pool: Pool;
  quarantine: QuarantineWriter;
  pipeline: string;
  topic: string;
  table: string;
  workerId: string;
  log: Logger;
}

export async function rejectNotInSource(items: readonly SpoolItem[], rc: RejectContext): Promise<void> {
  if (items.length === 0) return;
  const rows = [];
  for (const item of items) {
    const key = String(item.task.key);
    const detail = `key ${JSON.stringify(key.length > 200 ? `${key.slice(0, 200)}...` : key)} has no row in the source table ${rc.table}`;
    const entry = taskEntry(item, rc.topic, 'not-in-source', detail);
    const file = await rc.quarantine.write(entry);
    rows.push({ pipeline: rc.pipeline, topic: rc.topic, partition: item.partition, offset: item.offset, reason: 'not-in-source', detail, key: Buffer.from(key), size: entry.size, fetcherId: rc.workerId, spoolFile: file });
  }
  rc.log.warn({ count: items.length, example: String(items[0]!.task.key).slice(0, 200) }, 'tasks without a source row not run (bad messages, reason not-in-source)');
  await recordBadMessages(rc.pool, rows);
}
