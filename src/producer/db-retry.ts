// The producer's one way to call the database: a short outage (about 3.5 s) is waited out, then reported with
// what was being done; a rerun picks up where the run stopped.

import type { DatabaseConfig } from '../config/config.js';
import { DatabaseError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { RetryPolicy } from '../core/retry.js';
import { withDbRetries } from '../db/db-errors.js';

const PRODUCER_DB_POLICY: RetryPolicy = { maxAttempts: 4, initialDelayMs: 500, maxDelayMs: 2000, jitter: 'none' };

export type DbCall = <T>(what: string, fn: () => Promise<T>) => Promise<T>;

/** Binds the retry to a run's database settings and logger once. */
export function producerDbCall(database: DatabaseConfig, log: Logger): DbCall {
  return async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await withDbRetries(fn, {
        databaseUrl: database.url,
        timeoutMs: database.connectTimeoutMs,
        policy: PRODUCER_DB_POLICY,
        onRetry: (err, attempt, delayMs) => log.warn({ err, attempt, delayMs, what }, 'database call failed; retrying'),
      });
    } catch (err) {
      if (err instanceof DatabaseError && err.code === 'DB_ERROR')
        throw new DatabaseError('DB_ERROR', `${what}: ${err.message}`, { cause: err.cause });
      throw err;
    }
  };
}
