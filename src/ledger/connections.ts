// What sluice holds of the user's database server: the connections each live process reports in its
// heartbeat (its one pool), and the server's own count of sessions of this account on this database (which
// also sees processes without a heartbeat: produce, the dashboard, status; and anything else that uses the
// same account). docs/operations.md, "Connections" gives the budget these stay within.

import type { RowDataPacket } from 'mysql2/promise';
import { poolConnections, type Pool } from '../db/pool.js';
import type { ProcessRow } from './processes.js';

export interface ConnectionsReport {
  /** The most any one process of sluice holds: database.poolSize. */
  poolSize: number;
  /** Live processes with a heartbeat (one per host and pid: `run` reports its shared pool twice). */
  processes: number;
  /** What those processes' pools hold now, by their heartbeats. */
  heldByProcesses: number;
  /** What the process answering (status, the dashboard) holds now. */
  heldHere: number | null;
  /**
   * Sessions of this account on this database, by the server (SHOW PROCESSLIST); null without the privilege to see.
   */
  server: number | null;
}

export async function connectionsReport(
  pool: Pool,
  poolSize: number,
  processes: readonly (ProcessRow & { stale: boolean })[],
): Promise<ConnectionsReport> {
  const byProcess = new Map<string, number>();
  for (const p of processes) {
    if (p.stale) continue;
    const n = Number(p.info.dbConnections ?? 0);
    const id = `${p.host}\u0000${p.pid}`;
    byProcess.set(id, Math.max(byProcess.get(id) ?? 0, Number.isFinite(n) ? n : 0));
  }
  return {
    poolSize,
    processes: byProcess.size,
    heldByProcesses: [...byProcess.values()].reduce((a, b) => a + b, 0),
    heldHere: poolConnections(pool),
    server: await serverSessions(pool),
  };
}

/** Sessions of the current account on the current database (the account's own are always visible to it). */
export async function serverSessions(pool: Pool): Promise<number | null> {
  try {
    const [[r]] = await pool.query<RowDataPacket[]>(
      'SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ' +
        "SUBSTRING_INDEX(CURRENT_USER(), '@', 1) AND DB = DATABASE()",
    );
    return Number(r?.n ?? 0);
  } catch {
    return null;
  }
}
