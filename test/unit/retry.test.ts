// The one retry policy: what is retried, how long it waits, when it gives up; and the one table of
// retryable database errors. No real waits: a fake clock records the delays.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DatabaseError, NonRetriableError, SourceError } from '../../src/core/errors.js';
import { backoffDelay, withRetries, type RetryPolicy } from '../../src/core/retry.js';
import { RETRYABLE_DB_CODES, toDatabaseError, withDbRetries } from '../../src/db/db-errors.js';
import { fakeClock } from '../helpers/fake-clock.js';

const policy: RetryPolicy = { maxAttempts: 4, initialDelayMs: 100, maxDelayMs: 250, jitter: 'none' };
const failing = (errors: unknown[]) => {
  const calls: number[] = [];
  return {
    calls,
    fn: async (attempt: number) => {
      calls.push(attempt);
      const e = errors.shift();
      if (e !== undefined) throw e as Error;
      return 'ok';
    },
  };
};

describe('backoffDelay', () => {
  it('doubles from the initial delay up to the cap; full jitter draws below it', () => {
    assert.deepEqual(
      [1, 2, 3, 4].map((a) => backoffDelay(policy, a)),
      [100, 200, 250, 250],
    );
    assert.equal(
      backoffDelay({ ...policy, jitter: 'full' }, 2, () => 0.5),
      100,
    );
    assert.equal(
      backoffDelay({ ...policy, jitter: 'full' }, 2, () => 0),
      0,
    );
  });
});

describe('withRetries', () => {
  it('retries a retriable failure with the policy delays and returns the first success', async () => {
    const clock = fakeClock();
    const f = failing([new Error('reset'), new Error('reset')]);
    const retried: number[] = [];
    assert.equal(await withRetries(f.fn, policy, { clock, onRetry: (_e, attempt) => retried.push(attempt) }), 'ok');
    assert.deepEqual(f.calls, [1, 2, 3]);
    assert.deepEqual(clock.sleeps, [100, 200]);
    assert.deepEqual(retried, [1, 2]);
  });

  it('never retries a bug or an error that says it is not retriable', async () => {
    for (const err of [new TypeError('x is undefined'), new NonRetriableError('bad input')]) {
      const f = failing([err]);
      await assert.rejects(withRetries(f.fn, policy, { clock: fakeClock() }), err);
      assert.deepEqual(f.calls, [1]);
    }
  });

  it('gives up after maxAttempts, counting from firstAttempt, with the last error', async () => {
    const last = new Error('third');
    const f = failing([new Error('first'), new Error('second'), last, new Error('never')]);
    await assert.rejects(withRetries(f.fn, policy, { clock: fakeClock(), firstAttempt: 2 }), last);
    assert.deepEqual(f.calls, [2, 3, 4]);
  });

  it('stops waiting when the signal aborts, and throws the error it was waiting to retry', async () => {
    const ctl = new AbortController();
    const err = new Error('outage');
    const f = failing([err, err, err]);
    await assert.rejects(
      withRetries(
        f.fn,
        { ...policy, maxAttempts: Infinity },
        { clock: fakeClock(), signal: ctl.signal, onRetry: () => ctl.abort() },
      ),
      err,
    );
    assert.deepEqual(f.calls, [1]);
  });
});

describe('retryable database errors', () => {
  it('one table says which driver errors can pass: connection loss, deadlock, lock wait timeout', () => {
    const at = { host: 'h', port: 3306, user: 'u', password: '', database: 'd' };
    for (const code of [
      'PROTOCOL_CONNECTION_LOST',
      'ECONNRESET',
      'ECONNREFUSED',
      'ER_LOCK_DEADLOCK',
      'ER_LOCK_WAIT_TIMEOUT',
    ]) {
      assert.ok(code in RETRYABLE_DB_CODES, code);
      assert.equal(toDatabaseError(Object.assign(new Error(code), { code }), at, 0).retriable, true, code);
    }
    for (const code of ['ER_PARSE_ERROR', 'ER_DATA_TOO_LONG', 'ER_ACCESS_DENIED_ERROR']) {
      assert.equal(toDatabaseError(Object.assign(new Error(code), { code }), at, 0).retriable, false, code);
    }
  });

  it(
    'withDbRetries retries a deadlock, throws a refused statement as a ' +
      'DatabaseError, and passes a SourceError through',
    async () => {
      const url = 'mysql://root@127.0.0.1:3306/x';
      const clock = fakeClock();
      const f = failing([Object.assign(new Error('deadlock'), { code: 'ER_LOCK_DEADLOCK' })]);
      assert.equal(await withDbRetries(f.fn, { databaseUrl: url, clock }), 'ok');
      assert.deepEqual(clock.sleeps, [400]);
      await assert.rejects(
        withDbRetries(failing([Object.assign(new Error('syntax'), { code: 'ER_PARSE_ERROR' })]).fn, {
          databaseUrl: url,
          clock,
        }),
        (e: unknown) => e instanceof DatabaseError && e.code === 'DB_ERROR',
      );
      const gone = new SourceError('SOURCE_GONE', 'table dropped');
      await assert.rejects(withDbRetries(failing([gone]).fn, { databaseUrl: url, clock }), gone);
    },
  );
});
