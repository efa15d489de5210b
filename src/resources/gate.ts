// One process's side of a fleet-wide resource: the calls it may have in flight (its leased concurrency
// share) and start per second (its leased rate share, a token bucket), for as long as its lease lasts by its
// own monotonic clock. Every call of every stage using the resource passes here; no database on this path.
//
// The lease rule that keeps the fleet-wide cap during an outage: a call starts only if it would end (its
// stage timeout) before the lease does. A process that cannot renew stops starting calls, and its last calls
// are over before the database hands its share to another process.
//
// States: waiting (no lease yet, or it ran out) -> open (a lease is held) -> closed.

import { realClock, type Clock } from '../core/retry.js';
import { coerceError } from '../core/errors.js';

export interface Grant {
  /** Calls in flight at once; Infinity when the resource has no concurrency limit. */
  concurrency: number;
  /** Calls started per second; Infinity when it has no rate limit. */
  rate: number;
  /** Tokens the bucket holds at most (this process's part of the burst). */
  burst: number;
  /** When the lease ends, on this process's clock (already less a safety margin). */
  leaseEnd: number;
}

export interface CallSamples {
  calls: number;
  ok: number;
  overloads: number;
  latencySumMs: number;
  latencyMinMs: number | null;
}

export interface CallOutcome {
  ok: boolean;
  overload: boolean;
  latencyMs: number;
}

interface Waiter {
  timeoutMs: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class ResourceGate {
  state: 'waiting' | 'open' | 'closed' = 'waiting';
  inFlight = 0;
  readonly name: string;
  #grant: Grant = { concurrency: 0, rate: Infinity, burst: 0, leaseEnd: -Infinity };
  #tokens = 0;
  #tokensAt = 0;
  readonly #queue: Waiter[] = [];
  readonly #clock: Clock;
  #timer: NodeJS.Timeout | undefined;
  #samples: CallSamples = emptySamples();

  constructor(name: string, clock: Clock = realClock) {
    this.name = name;
    this.#clock = clock;
  }

  get grant(): Readonly<Grant> {
    return this.#grant;
  }

  /** Calls in flight and waiting: what this process asks for at its next renewal. */
  get demand(): number {
    return this.inFlight + this.#queue.length;
  }

  /** Waits for a permit; call `done` with the outcome when the call is over. */
  async acquire(timeoutMs: number, signal?: AbortSignal): Promise<(outcome: CallOutcome) => void> {
    if (this.state === 'closed') throw new Error(`resource ${this.name} is closed`);
    if (!this.#tryStart(timeoutMs)) {
      await new Promise<void>((resolve, reject) => {
        const w: Waiter = { timeoutMs, resolve, reject };
        const onAbort = (): void => {
          const i = this.#queue.indexOf(w);
          if (i >= 0) this.#queue.splice(i, 1);
          reject(coerceError(signal!.reason));
        };
        if (signal?.aborted === true) return reject(coerceError(signal.reason));
        signal?.addEventListener('abort', onAbort, { once: true });
        w.resolve = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        this.#queue.push(w);
        this.#schedule();
      });
    }
    let released = false;
    return (outcome) => {
      if (released) return;
      released = true;
      this.inFlight--;
      this.#record(outcome);
      this.#drain();
    };
  }

  /**
   * Lowers the local limit ahead of a renewal that will report less: no call starts above it from now on.
   * What the process must still report (`held`) stays at least its calls in flight until they end.
   */
  lowerTo(concurrency: number): void {
    this.#grant = { ...this.#grant, concurrency: Math.min(this.#grant.concurrency, concurrency) };
  }

  /** The share this process holds: its limit, or its calls in flight when more are still running. */
  get held(): number {
    return Math.max(this.inFlight, this.#grant.concurrency);
  }

  /** Lowers the local rate before a renewal that may report less. */
  lowerRate(rate: number): void {
    if (rate >= this.#grant.rate) return;
    this.#refill();
    const g = this.#grant;
    this.#grant = { ...g, rate, burst: Number.isFinite(g.rate) && g.rate > 0 ? (g.burst * rate) / g.rate : g.burst };
    this.#tokens = Math.min(this.#tokens, this.#capacity());
  }

  /** A renewal came back: the new share and lease. */
  apply(grant: Grant): void {
    if (this.state === 'closed') return;
    this.#refill();
    this.#grant = grant;
    this.#tokens = Math.min(this.#tokens, this.#capacity());
    this.state = this.#clock.now() < grant.leaseEnd ? 'open' : 'waiting';
    this.#drain();
  }

  /** Samples since the last call (for the adaptive limit). */
  takeSamples(): CallSamples {
    const s = this.#samples;
    this.#samples = emptySamples();
    return s;
  }

  close(): void {
    this.state = 'closed';
    clearTimeout(this.#timer);
    for (const w of this.#queue.splice(0)) w.reject(new Error(`resource ${this.name} is closed`));
  }

  #capacity(): number {
    return Number.isFinite(this.#grant.rate) ? Math.max(1, this.#grant.burst) : Infinity;
  }

  #refill(): void {
    const now = this.#clock.now();
    if (Number.isFinite(this.#grant.rate))
      this.#tokens = Math.min(this.#capacity(), this.#tokens + ((now - this.#tokensAt) / 1000) * this.#grant.rate);
    this.#tokensAt = now;
  }

  #tryStart(timeoutMs: number): boolean {
    if (this.#queue.length > 0 || this.state === 'closed') return false;
    return this.#admit(timeoutMs);
  }

  #admit(timeoutMs: number): boolean {
    const now = this.#clock.now();
    if (now + timeoutMs > this.#grant.leaseEnd) return false;
    if (this.inFlight >= this.#grant.concurrency) return false;
    this.#refill();
    if (Number.isFinite(this.#grant.rate)) {
      if (this.#tokens < 1) return false;
      this.#tokens -= 1;
    }
    this.inFlight++;
    return true;
  }

  #drain(): void {
    while (this.#queue.length > 0 && this.#admit(this.#queue[0]!.timeoutMs)) this.#queue.shift()!.resolve();
    this.#schedule();
  }

  /** A waiter held up by the rate only needs time: wake up when the next token is due. */
  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const g = this.#grant;
    if (this.#queue.length === 0 || !Number.isFinite(g.rate) || g.rate <= 0 || this.inFlight >= g.concurrency) return;
    const waitMs = Math.max(1, ((1 - this.#tokens) / g.rate) * 1000);
    this.#timer = setTimeout(() => this.#drain(), Math.min(waitMs, 1000));
  }

  #record(o: CallOutcome): void {
    const s = this.#samples;
    s.calls++;
    if (o.ok) {
      s.ok++;
      s.latencySumMs += o.latencyMs;
      s.latencyMinMs = s.latencyMinMs === null ? o.latencyMs : Math.min(s.latencyMinMs, o.latencyMs);
    }
    if (o.overload) s.overloads++;
  }
}

function emptySamples(): CallSamples {
  return { calls: 0, ok: 0, overloads: 0, latencySumMs: 0, latencyMinMs: null };
}
