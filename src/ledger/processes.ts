// The registry of live sluice processes (sluice_processes): every fetcher and worker writes its row every
// few seconds (host, pid, role, what it is doing), and deletes it when it stops cleanly. A row whose
// heartbeat is old belongs to a process that died. Times are the database's.

import type { RowDataPacket } from 'mysql2/promise';
import type { Pool } from '../db/pool.js';

export interface ProcessRow {
  id: string;
  host: string;
  pid: number;
  role: 'fetcher' | 'worker';
  pipeline: string;
  info: Record<string, unknown>;
  startedAt: string;
  /** Seconds since its last heartbeat, by the database's clock. */
  ageSeconds: number;
}

export async function beat(pool: Pool, p: Omit<ProcessRow, 'startedAt' | 'ageSeconds'>): Promise<void> {
  await pool.query(
    `INSERT INTO sluice_processes (id, host, pid, role, pipeline, info) VALUES (?, ?, ?, ?, ?, ?)
     ON DUPLICATE KEY UPDATE info = VALUES(info), heartbeat_at = NOW(3)`,
    [p.id, p.host, p.pid, p.role, p.pipeline, JSON.stringify(p.info)],
  );
}

export async function removeProcess(pool: Pool, id: string): Promise<void> {
  await pool.query('DELETE FROM sluice_processes WHERE id = ?', [id]);
}

export async function listProcesses(pool: Pool, pipeline: string): Promise<ProcessRow[]> {
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT id, host, pid, role, pipeline, info, DATE_FORMAT(started_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS started,
            TIMESTAMPDIFF(MICROSECOND, heartbeat_at, NOW(3)) / 1e6 AS age
       FROM sluice_processes WHERE pipeline = ? ORDER BY role, host, id`,
    [pipeline],
  );
  return rows.map((r) => ({
    id: String(r.id),
    host: String(r.host),
    pid: Number(r.pid),
    role: r.role as ProcessRow['role'],
    pipeline: String(r.pipeline),
    info: (typeof r.info === 'string' ? JSON.parse(r.info) : (r.info ?? {})) as Record<string, unknown>,
    startedAt: String(r.started).replace(/(\.\d{3})\d*Z$/, '$1Z'),
    ageSeconds: Number(r.age),
  }));
}
