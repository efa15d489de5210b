// This ledger's identity (sluice_ledger, one row written by `migrate`): what the envelope carries and what
// claims a topic or consumer group on a shared Kafka cluster (kafka/ledger-claims.ts). Read once per pool.

import type { RowDataPacket } from 'mysql2/promise';
import type { Pool } from '../db/pool.js';

const known = new WeakMap<Pool, Promise<string>>();

/** The ledger's id; a database migrated before ids existed gets one here (the first caller writes it). */
export function ledgerId(pool: Pool): Promise<string> {
  let id = known.get(pool);
  if (id === undefined) {
    id = read(pool);
    known.set(pool, id);
    id.catch(() => known.delete(pool));
  }
  return id;
}

async function read(pool: Pool, written = false): Promise<string> {
  const [rows] = await pool.query<RowDataPacket[]>('SELECT id FROM sluice_ledger ORDER BY created_at, id LIMIT 1');
  if (rows[0] !== undefined) return String(rows[0].id);
  if (written) throw new Error('sluice_ledger holds no row after writing one');
  await pool.query(
    'INSERT INTO sluice_ledger (id) SELECT UUID() FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM sluice_ledger)',
  );
  return read(pool, true);
}
