// Keeps the leases of the segments a worker holds. Every leaseMs/3 each held segment's lease is renewed; a
// segment whose renewal finds it gone was taken back by another worker (this one stalled past its lease):
// it is marked lost, and whoever runs it stops starting its tasks. Those tasks are redone elsewhere,
// idempotently.
//
// States: running -> closed (the timer stops; held segments are left to whoever holds them).

import type { Logger } from '../core/logger.js';
import type { Claim } from '../spool/claim.js';
import type { SpoolItem } from '../spool/segment.js';

/** A segment this worker holds, with the indexes of its items that are finished (done, quarantined, skipped). */
export interface HeldSegment {
  claim: Claim;
  items: SpoolItem[];
  settled: Set<number>;
  lost: boolean;
}

export interface LeaseRenewer {
  renew(c: Claim): Promise<boolean>;
}

export class LeaseKeeper {
  state: 'running' | 'closed' = 'running';
  readonly #held = new Set<HeldSegment>();
  readonly #renewer: LeaseRenewer;
  readonly #log: Logger;
  readonly #timer: NodeJS.Timeout;

  constructor(renewer: LeaseRenewer, leaseMs: number, log: Logger) {
    this.#renewer = renewer;
    this.#log = log;
    this.#timer = setInterval(() => void this.renewAll(), Math.max(100, Math.floor(leaseMs / 3)));
    // The worker's claim loop keeps the process alive; held leases alone must not.
    this.#timer.unref();
  }

  add(h: HeldSegment): void {
    this.#held.add(h);
  }

  delete(h: HeldSegment): void {
    this.#held.delete(h);
  }

  get size(): number {
    return this.#held.size;
  }

  /** One round of renewals (the timer's work; tests call it directly). Never rejects. */
  async renewAll(): Promise<void> {
    await Promise.all([...this.#held].map((h) => this.#renew(h)));
  }

  async #renew(h: HeldSegment): Promise<void> {
    try {
      const ok = await this.#renewer.renew(h.claim);
      if (!ok && !h.lost) {
        h.lost = true;
        this.#log.warn({ segment: h.claim.segment }, 'lease lost: another worker took the segment back');
      }
    } catch (err) {
      this.#log.warn({ err, segment: h.claim.segment }, 'lease renewal failed');
    }
  }

  close(): void {
    this.state = 'closed';
    clearInterval(this.#timer);
  }
}
