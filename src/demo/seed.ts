// Seeds the demo data set: the entity catalogue and documents 1..n (only the missing ones).

import type { RowDataPacket } from 'mysql2/promise';
import type { Pool } from '../db/pool.js';
import { demoDocument, ENTITIES } from './data.js';

/**
 * Seeds the documents, and then results for `offlineShare` of them in the result table, as an earlier
 * offline run would have left them: the demo then shows that only the missing rest is published.
 */
export async function seedDemo(
  pool: Pool,
  documents: number,
  offlineShare = 0.3,
): Promise<{ inserted: number; total: number; offline: number }> {
  await pool.query('INSERT IGNORE INTO sluice_demo_entities (name, kind) VALUES ?', [
    ENTITIES.map((e) => [e.name, e.kind]),
  ]);
  const [[row]] = await pool.query<RowDataPacket[]>(
    'SELECT COALESCE(MAX(id), 0) AS top, COUNT(*) AS n FROM sluice_demo_documents',
  );
  let inserted = 0;
  for (let from = Number(row?.top ?? 0) + 1; from <= documents; from += 1000) {
    const rows: unknown[][] = [];
    for (let i = from; i < Math.min(documents + 1, from + 1000); i++) {
      const d = demoDocument(i);
      rows.push([i, d.title, d.body, d.lang]);
    }
    await pool.query('INSERT INTO sluice_demo_documents (id, title, body, lang) VALUES ?', [rows]);
    inserted += rows.length;
  }
  const tenths = Math.round(offlineShare * 10);
  const [r] = await pool.query<import('mysql2').ResultSetHeader>(
    'INSERT IGNORE INTO sluice_demo_doc_ent_map (doc_id, ent_list_str, ' +
      "mapped_list_str) SELECT id, 'offline run', '' FROM sluice_demo_documents " +
      'WHERE id <= ? AND id % 10 < ?',
    [documents, tenths],
  );
  return { inserted, total: Number(row?.n ?? 0) + inserted, offline: r.affectedRows };
}
