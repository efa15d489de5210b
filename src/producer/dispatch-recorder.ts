// Dispatch records for the batches Kafka acknowledged, written in order and trailing the broker by at most two
// batches: they overlap the next sends, and the first one that fails (after its retries) stops the run. A
// crash before a record is written republishes that batch on the next run (a duplicate the workers absorb);
// a task is never recorded before Kafka has it.

import { coerceError } from '../core/errors.js';
import type { Acknowledged } from './acked-send.js';

/** Batches whose records may be queued behind the broker before a send waits for the oldest. */
const MAX_QUEUED = 2;

type RecorderState = 'open' | 'failed' | 'closed';

export class DispatchRecorder {
  #state: RecorderState = 'open';
  #chain: Promise<void> = Promise.resolve();
  #queued = 0;
  #error: Error | null = null;
  #recorded = 0;
  readonly #write: (acked: Acknowledged[]) => Promise<void>;

  /** `write` records one batch (with its own retries) and throws when it cannot. */
  constructor(write: (acked: Acknowledged[]) => Promise<void>) {
    this.#write = write;
  }

  get state(): RecorderState {
    return this.#state;
  }

  /** Tasks recorded so far. */
  get recorded(): number {
    return this.#recorded;
  }

  /** Throws the first failed record's error: the run stops before it sends more. */
  check(): void {
    if (this.#error !== null) throw this.#error;
  }

  /** Queues the records of an acknowledged batch; waits when more than MAX_QUEUED are queued. */
  async add(acked: Acknowledged[]): Promise<void> {
    this.check();
    if (this.#state !== 'open') throw new Error(`dispatch recorder is ${this.#state}`);
    const previous = this.#chain;
    this.#queued++;
    this.#chain = previous.then(async () => {
      try {
        await this.#write(acked);
        this.#recorded += acked.length;
      } catch (err) {
        this.#error ??= coerceError(err);
        this.#state = 'failed';
        throw err;
      } finally {
        this.#queued--;
      }
    });
    this.#chain.catch(() => {});
    if (this.#queued > MAX_QUEUED) await previous;
  }

  /**
   * Records the acknowledged part of a failed batch, after what is queued; a failure here is reported to
   * `onError` and not thrown (the run already fails for the send; a rerun publishes those tasks again).
   */
  async addPartial(acked: Acknowledged[], onError: (err: unknown) => void): Promise<void> {
    await this.#chain.catch(() => {});
    try {
      await this.#write(acked);
      this.#recorded += acked.length;
    } catch (err) {
      onError(err);
    }
  }

  /** Waits for every queued record; throws the first failure. */
  async drain(): Promise<void> {
    await this.#chain;
    this.check();
  }

  /** Waits for what is queued, whatever it gives; idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    try {
      await this.#chain;
    } catch {
      // Already reported through drain() or check(); close only waits.
    }
    if (this.#state === 'open') this.#state = 'closed';
  }
}
