// Seeds the demo data set: the entity catalogue and documents 1..n (only the missing ones).

import type { RowDataPacket } from 'mysql2/promise';
import type { Pool } from '../db/pool.js';
import { demoDocument, ENTITIES } from './data.js';

export async function seedDemo(pool: Pool, documents: number): Promise<{ inserted: number; total: number }> {
  await pool.query('INSERT IGNORE INTO sluice_demo_entities (name, kind) VALUES ?', [ENTITIES.map((e) => [e.name, e.kind])]);
  const [[row]] = await pool.query<RowDataPacket[]>('SELECT COALESCE(MAX(id), 0) AS top, COUNT(*) AS n FROM sluice_demo_documents');
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
  return { inserted, total: Number(row?.n ?? 0) + inserted };
}
