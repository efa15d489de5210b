// Per-stage limits: a concurrency limit (p-limit) and a rate limit (calls started per second).

import pLimit, { type LimitFunction } from 'p-limit';
import { sleep } from '../core/sleep.js';

/** Spaces call starts at least 1/rate seconds apart; waiters are served in order. */
export class RateLimiter {
  readonly #intervalMs: number;
  #next = 0;

  constructor(ratePerSecond: number) {
    this.#intervalMs = 1000 / ratePerSecond;
  }

  /** Resolves at the caller's start slot; rejects if `signal` aborts first. */
  async acquire(signal?: AbortSignal): Promise<void> {
    const now = performance.now();
    const slot = Math.max(now, this.#next);
    this.#next = slot + this.#intervalMs;
    if (slot > now) await sleep(slot - now, signal);
  }
}

export interface StageLimits {
  limit: LimitFunction;
  rate: RateLimiter | null;
}

export function stageLimits(concurrency: number, ratePerSecond: number | undefined): StageLimits {
  return { limit: pLimit(concurrency), rate: ratePerSecond === undefined ? null : new RateLimiter(ratePerSecond) };
}
