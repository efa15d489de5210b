// The one retry loop of sluice. Every caller that tries again (ledger writes, task-state reads, the
// producer's database calls, stage runs) goes through `withRetries` with a policy; the fetcher's restart
// delay, which kafkajs's own loop waits out, comes from `backoffDelay`. Delays and the clock are injectable,
// so tests run the same code without real waits.
//
// What may be retried: `isRetriable` (a `retriable` flag; bugs never). A caller may classify the raw error
// first (a driver error into a DatabaseError, say) and may stop early through `signal`.

import { coerceError, isRetriable } from './errors.js';
import { sleep } from './sleep.js';

export interface RetryPolicy {
  /** Attempts in all, the first included; Infinity: until it works or the signal aborts. */
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  /**
   * 'full': a random delay in [0, backoff] (many clients retrying at once spread out); 'none': the backoff itself.
   */
  jitter: 'full' | 'none';
}

export interface Clock {
  now(): number;
  /** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: Clock = { now: () => performance.now(), sleep };

/** The delay before attempt `attempt + 1`: initial × 2^(attempt−1), capped, with the policy's jitter. */
export function backoffDelay(
  policy: Pick<RetryPolicy, 'initialDelayMs' | 'maxDelayMs' | 'jitter'>,
  attempt: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.min(Math.max(0, attempt - 1), 40));
  return policy.jitter === 'full' ? Math.round(random() * ceiling) : ceiling;
}

export interface RetryOptions {
  /** Aborting stops the waiting: the last error is thrown (callers tell a stop from a failure by the signal). */
  signal?: AbortSignal;
  clock?: Clock;
  random?: () => number;
  /** Number of the first attempt (a task's earlier failures count against its budget). Default 1. */
  firstAttempt?: number;
  /** Turns what was thrown into the error that is judged and rethrown (e.g. a driver error into a DatabaseError). */
  classify?: (thrown: unknown) => Error;
  /** Called before each wait: the place to log and count a retry. */
  onRetry?: (err: Error, attempt: number, delayMs: number) => void;
  /** Whether to try again; default `isRetriable` (a flag, bugs never). */
  retriable?: (err: Error) => boolean;
}

/** Runs `fn(attempt)` until it resolves, an error is not retriable, the attempts are used up or `signal` aborts. */
export async function withRetries<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  opts: RetryOptions = {},
): Promise<T> {
  const clock = opts.clock ?? realClock;
  const classify = opts.classify ?? coerceError;
  const retriable = opts.retriable ?? isRetriable;
  for (let attempt = opts.firstAttempt ?? 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (thrown) {
      const err = classify(thrown);
      if (!retriable(err) || attempt >= policy.maxAttempts || opts.signal?.aborted === true) throw err;
      const delayMs = backoffDelay(policy, attempt, opts.random);
      opts.onRetry?.(err, attempt, delayMs);
      try {
        await clock.sleep(delayMs, opts.signal);
      } catch {
        throw err;
      }
    }
  }
}
