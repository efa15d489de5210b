// mysql2 connection pools for the hot paths, opened with a preflight query so that a dead server, a wrong
// password or a missing database is reported within seconds as one clear line, not as a pool timeout later.

import mysql, { type Pool, type PoolOptions } from 'mysql2/promise';
import type { DatabaseConfig } from '../core/config.js';
import { ConfigError, DatabaseError } from '../core/errors.js';
import { parseDatabaseUrl, type ConnectionOptions } from './database-url.js';
import { run } from '../core/hints.js';

export type { Pool };

export interface OpenPoolOptions {
  /** Connect without selecting the database (the migration runner creates it). */
  noDatabase?: boolean;
  /** Allow several statements per query (migration scripts only). */
  multipleStatements?: boolean;
  poolSize?: number;
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

interface DriverError {
  code?: string;
  errno?: number;
  message?: string;
}

/** Maps a driver error to a DatabaseError whose message says what is wrong and whose hint says what to run. */
/** How long to wait before retrying after the database went away: 400 ms doubling to 10 s. */
export function outageDelayMs(attempt: number): number {
  return Math.min(10_000, 200 * 2 ** Math.min(attempt, 6));
}

export function toDatabaseError(err: unknown, c: ConnectionOptions, timeoutMs: number): DatabaseError {
  const e = (err ?? {}) as DriverError;
  const at = `${c.host}:${c.port}`;
  switch (e.code) {
    case 'ECONNREFUSED':
      return new DatabaseError('DB_UNREACHABLE', `database unreachable at ${at} (connection refused)`, {
        retriable: true,
        hint: `start it with: ${run('services')}, or check the host and port in DATABASE_URL`,
        cause: err,
      });
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new DatabaseError('DB_UNREACHABLE', `database at ${at} did not answer within ${timeoutMs} ms`, {
        retriable: true,
        hint: `check the host and port in DATABASE_URL, or start it with: ${run('services')}`,
        cause: err,
      });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new DatabaseError('DB_UNREACHABLE', `database host '${c.host}' not found`, {
        retriable: e.code === 'EAI_AGAIN',
        hint: 'check the host in DATABASE_URL',
        cause: err,
      });
    case 'ER_ACCESS_DENIED_ERROR':
    case 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR':
    case 'ER_NOT_SUPPORTED_AUTH_MODE':
      return new DatabaseError('DB_AUTH', `database at ${at} refused user '${c.user}' (wrong password?)`, {
        hint: 'fix the user and password in DATABASE_URL',
        cause: err,
      });
    case 'ER_DBACCESS_DENIED_ERROR':
      return new DatabaseError('DB_AUTH', `user '${c.user}' may not use database '${c.database}' at ${at}`, {
        hint: `GRANT ALL ON \`${c.database}\`.* TO the user, or use another database in DATABASE_URL`,
        cause: err,
      });
    case 'ER_BAD_DB_ERROR':
      return new DatabaseError('DB_MISSING', `database '${c.database}' does not exist at ${at}`, {
        hint: `run: ${run('migrate')}, which creates it`,
        cause: err,
      });
    case 'PROTOCOL_CONNECTION_LOST':
    case 'ECONNRESET':
    case 'EPIPE':
      return new DatabaseError('DB_CONNECTION_LOST', `lost the connection to the database at ${at}`, {
        retriable: true,
        cause: err,
      });
    default:
      return new DatabaseError('DB_ERROR', `database error at ${at}: ${e.message ?? String(err)}`, {
        retriable: false,
        cause: err,
      });
  }
}

/** Opens a pool and proves it works with `SELECT 1`; throws a DatabaseError otherwise (and closes the pool). */
export async function openPool(db: DatabaseConfig, opts: OpenPoolOptions = {}): Promise<Pool> {
  assertDatabaseUrl(db);
  const options = poolOptions(db, opts);
  const pool = mysql.createPool(options);
  // NOW(3) must mean the same instant in every session: sluice compares timestamps it wrote with NOW(3).
  pool.on('connection', (conn) => {
    conn.query("SET time_zone = '+00:00'");
  });
  try {
    await pool.query('SELECT 1');
    return pool;
  } catch (err) {
    await pool.end().catch(() => {});
    throw toDatabaseError(err, parseDatabaseUrl(db.url), db.connectTimeoutMs);
  }
}

/** sluice never picks a database by itself: on a shared server, a default could be someone else's. */
export function assertDatabaseUrl(db: DatabaseConfig): void {
  if (db.url === '') {
    throw new ConfigError([
      'database.url is not set: set DATABASE_URL, pass --database-url, or set database.url in sluice.config.ts (sluice does not pick a database by itself)',
    ]);
  }
}
