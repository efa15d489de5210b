// Tasks of another ledger (another deployment publishing to the same topic) are never run: the key may be in this
// source too, but the payload and the task are the other deployment's. Tasks whose key has no source row are not run:
// the ledger's "done" counts source rows only, so their result would count for nothing, and the row they were made
// for may be gone. They are recorded as bad messages (reason not-in-source) in the database and kept in the spool's
// quarantine, like the fetcher's.

import { recordBadMessages } from '../ledger/bad-messages.js';
import type { Pool } from '../db/pool.js';
import type { SpoolItem } from '../spool/segment.js';
import { taskEntry, type QuarantineWriter } from '../spool/quarantine.js';
import type { Logger } from '../core/logger.js';
import { otherLedger } from '../core/envelope.js';

export interface RejectContext {
  pool: Pool;
  quarantine: QuarantineWriter;
  pipeline: string;
  topic: string;
  table: string;
  workerId: string;
  /** This deployment's ledger id. */
  ledger: string;
  log: Logger;
}

export type RejectReason = 'not-in-source' | 'other-ledger';

function detailOf(item: SpoolItem, reason: RejectReason, rc: RejectContext): string {
  const key = String(item.task.key);
  if (reason === 'other-ledger') return otherLedger(item.task.ledger, rc.ledger) ?? 'message of another ledger';
  return (
    `key ${JSON.stringify(key.length > 200 ? `${key.slice(0, 200)}...` : key)} ` +
    `has no row in the source table ${rc.table}`
  );
}

export async function rejectItems(items: readonly SpoolItem[], reason: RejectReason, rc: RejectContext): Promise<void> {
  if (items.length === 0) return;
  const rows = [];
  for (const item of items) {
    const detail = detailOf(item, reason, rc);
    const entry = taskEntry(item, rc.topic, reason, detail);
    // '' on a full disk: the bad-message row below is the record.
    const file = await rc.quarantine.write(entry);
    rows.push({
      pipeline: rc.pipeline,
      topic: rc.topic,
      partition: item.partition,
      offset: item.offset,
      reason,
      detail,
      key: Buffer.from(String(item.task.key)),
      size: entry.size,
      fetcherId: rc.workerId,
      spoolFile: file,
    });
  }
  const example = String(items[0]!.task.key).slice(0, 200);
  if (reason === 'other-ledger')
    rc.log.error(
      { count: items.length, example, ledger: items[0]!.task.ledger },
      'tasks of another ledger not run (bad messages, reason other-ledger)',
    );
  else
    rc.log.warn(
      { count: items.length, example },
      'tasks without a source row not run (bad messages, reason not-in-source)',
    );
  await recordBadMessages(rc.pool, rows);
}
