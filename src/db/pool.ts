// mysql2 connection pools for the hot paths, opened with a preflight query so that a dead server, a wrong
// password or a missing database is reported within seconds as one clear line, not as a pool timeout later.

import mysql, { type Pool, type PoolOptions, type RowDataPacket } from 'mysql2/promise';
import type { DatabaseConfig } from '../config/config.js';
import { ConfigError } from '../core/errors.js';
import { toDatabaseError } from './db-errors.js';
import { parseDatabaseUrl } from './database-url.js';

export type { Pool };
export { toDatabaseError };

export interface OpenPoolOptions {
  /** Connect without selecting the database (the migration runner creates it). */
  noDatabase?: boolean;
  /** Allow several statements per query (migration scripts only). */
  multipleStatements?: boolean;
  poolSize?: number;
  /**
   * Queries waiting for a connection beyond this many fail at once (mysql2's "Queue limit reached."). @defaultValue
   * unbounded
   */
  queueLimit?: number;
  /** DATE/DATETIME as their text ('2026-01-02 03:04:05'): payloads keep zero dates and have no time zone drift. */
  dateStrings?: boolean;
}

export function poolOptions(db: DatabaseConfig, opts: OpenPoolOptions = {}): PoolOptions {
  const c = parseDatabaseUrl(db.url);
  return {
    host: c.host,
    port: c.port,
    user: c.user,
    password: c.password,
    database: opts.noDatabase === true ? undefined : c.database,
    connectionLimit: opts.poolSize ?? db.poolSize,
    queueLimit: opts.queueLimit ?? 0,
    connectTimeout: db.connectTimeoutMs,
    multipleStatements: opts.multipleStatements ?? false,
    charset: 'UTF8MB4_UNICODE_CI',
    timezone: 'Z',
    supportBigNumbers: true,
    bigNumberStrings: true,
    enableKeepAlive: true,
    dateStrings: opts.dateStrings ?? false,
  };
}

/** Opens a pool and proves it works with `SELECT 1`; throws a DatabaseError otherwise (and closes the pool). */
export async function openPool(db: DatabaseConfig, opts: OpenPoolOptions = {}): Promise<Pool> {
  assertDatabaseUrl(db);
  const options = poolOptions(db, opts);
  const pool = mysql.createPool(options);
  // NOW(3) must mean the same instant in every session: sluice compares timestamps it wrote with NOW(3).
  pool.on('connection', (conn) => {
    // The event hands over the driver's callback connection (mysql2 types it as the promise one). A failure
    // here shows on the connection's first real query.
    (conn as unknown as { query(sql: string, done: () => void): void }).query("SET time_zone = '+00:00'", () => {});
  });
  try {
    await pool.query('SELECT 1');
    return pool;
  } catch (err) {
    await pool.end().catch(() => {});
    throw toDatabaseError(err, parseDatabaseUrl(db.url), db.connectTimeoutMs);
  }
}

/**
 * One pool per process: a caller that already holds one lends it (and keeps it open); otherwise one of
 * `database.poolSize` is opened here and `release()` ends it. This is what keeps a process of sluice within
 * its documented budget of connections (docs/operations.md, "Connections").
 */
export interface PoolUse {
  readonly pool: Pool;
  /** Ends the pool if it was opened here; a lent pool stays open for its owner. Idempotent. */
  readonly release: () => Promise<void>;
}

export async function usePool(
  db: DatabaseConfig,
  lent: Pool | undefined,
  opts: OpenPoolOptions = {},
): Promise<PoolUse> {
  if (lent !== undefined) return { pool: lent, release: async () => {} };
  const pool = await openPool(db, opts);
  let ended: Promise<void> | undefined;
  return { pool, release: () => (ended ??= pool.end()) };
}

/** A short command's pool: never more than it needs, never more than `database.poolSize`. */
export function smallPool(db: DatabaseConfig, needs: number): number {
  return Math.max(1, Math.min(needs, db.poolSize));
}

interface CorePoolInternals {
  pool?: { _allConnections?: { length?: unknown } };
}

/**
 * The connections this pool holds open now (busy or idle), for heartbeats and status. mysql2 keeps the count in a
 * private field; a test (test/integration/dashboard-safety.test.ts and test/e2e/connection-budget.test.ts) fails if
 * an upgrade moves it.
 */
export function poolConnections(pool: Pool): number | null {
  const n = (pool as unknown as CorePoolInternals).pool?._allConnections?.length;
  return typeof n === 'number' ? n : null;
}

/** The pool had every connection busy and its queue full: the caller should answer "busy", not fail. */
export function isPoolBusy(err: unknown): boolean {
  return err instanceof Error && /queue limit reached/i.test(err.message);
}

/** sluice never picks a database by itself: on a shared server, a default could be someone else's. */
export function assertDatabaseUrl(db: DatabaseConfig): void {
  if (db.url === '') {
    throw new ConfigError([
      'database.url is not set: set DATABASE_URL, pass --database-url, or set ' +
        'database.url in sluice.config.ts (sluice does not pick a database by itself)',
    ]);
  }
}

/** The server's largest statement, in bytes (the ledger writer sizes its batches under it). */
export async function maxAllowedPacket(pool: Pool): Promise<number> {
  const [rows] = await pool.query<RowDataPacket[]>('SELECT @@max_allowed_packet AS p');
  return Number(rows[0]?.p ?? 16 * 1024 * 1024);
}
