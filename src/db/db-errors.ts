// What a database error means, in one place: the driver's code -> a DatabaseError with a one-line message
// and a hint, and whether waiting can help. Every caller that retries a database call (the ledger, the
// worker's task-state read, the producer) uses this table and `withDbRetries`, so a deadlock or a dropped
// connection is handled alike everywhere.

import { DatabaseError, SluiceError } from '../core/errors.js';
import { run } from '../core/hints.js';
import { withRetries, type RetryOptions, type RetryPolicy } from '../core/retry.js';
import { parseDatabaseUrl, type ConnectionOptions } from './database-url.js';

/** Driver codes after which the same statement can succeed later: the server is away, or a lock was in the way. */
export const RETRYABLE_DB_CODES: Readonly<Record<string, 'outage' | 'lock'>> = {
  ECONNREFUSED: 'outage',
  ETIMEDOUT: 'outage',
  EHOSTUNREACH: 'outage',
  ENETUNREACH: 'outage',
  EAI_AGAIN: 'outage',
  PROTOCOL_CONNECTION_LOST: 'outage',
  ECONNRESET: 'outage',
  EPIPE: 'outage',
  ER_SERVER_SHUTDOWN: 'outage',
  ER_CON_COUNT_ERROR: 'outage',
  ER_LOCK_DEADLOCK: 'lock',
  ER_LOCK_WAIT_TIMEOUT: 'lock',
};

/** While the database is away: 400 ms doubling to 10 s, for as long as the caller lets it (its signal). */
export const DB_OUTAGE_POLICY: RetryPolicy = {
  maxAttempts: Infinity,
  initialDelayMs: 400,
  maxDelayMs: 10_000,
  jitter: 'none',
};

interface DriverError {
  code?: string;
  message?: string;
}

/** Maps a driver error to a DatabaseError whose message says what is wrong and whose hint says what to run. */
export function toDatabaseError(err: unknown, c: ConnectionOptions, timeoutMs: number): DatabaseError {
  if (err instanceof DatabaseError) return err;
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
    default:
      return otherError(e, err, at);
  }
}

function otherError(e: DriverError, err: unknown, at: string): DatabaseError {
  const kind = e.code === undefined ? undefined : RETRYABLE_DB_CODES[e.code];
  if (kind === 'outage') {
    return new DatabaseError('DB_CONNECTION_LOST', `lost the connection to the database at ${at}`, {
      retriable: true,
      cause: err,
    });
  }
  if (kind === 'lock') {
    return new DatabaseError('DB_LOCK', `database at ${at}: ${e.message ?? String(e.code)}`, {
      retriable: true,
      cause: err,
    });
  }
  return new DatabaseError('DB_ERROR', `database error at ${at}: ${e.message ?? String(err)}`, {
    retriable: false,
    cause: err,
  });
}

export interface DbRetryOptions extends Omit<RetryOptions, 'classify'> {
  databaseUrl: string;
  /** Shown in the message of a connect timeout. */
  timeoutMs?: number;
  policy?: RetryPolicy;
}

/**
 * A database call, retried while the error is one of RETRYABLE_DB_CODES. A driver error is thrown as a
 * DatabaseError; a SluiceError that `fn` throws itself (a SourceError, say) passes through as it is.
 */
export function withDbRetries<T>(fn: (attempt: number) => Promise<T>, opts: DbRetryOptions): Promise<T> {
  const where = parseDatabaseUrl(opts.databaseUrl);
  return withRetries(fn, opts.policy ?? DB_OUTAGE_POLICY, {
    ...opts,
    classify: (thrown) =>
      thrown instanceof SluiceError ? thrown : toDatabaseError(thrown, where, opts.timeoutMs ?? 0),
  });
}
