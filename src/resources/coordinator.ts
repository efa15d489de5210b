// A process's side of every fleet-wide resource its stages use: one gate per resource (gate.ts) for the calls, and a
// renewal of each share about every RENEW_MS through the database (ledger/resource-leases.ts). A share is only ever
// lowered locally first (no call starts above it; what is still in flight is reported until it ends), then reported;
// it is raised only once the database granted it. A renewal that fails leaves the gate on its old lease, which runs
// out by itself: the process then starts no more calls until a renewal gets through.
//
// States: running -> closed (shares given back, so the others may use them at once).

import type { ResourceConfig } from '../config/config.js';
import { closeAll } from '../core/close.js';
import { childLogger, type Logger } from '../core/logger.js';
import { realClock, type Clock } from '../core/retry.js';
import type { Pool } from '../db/pool.js';
import { releaseShares, renewShare, type ShareAnswer } from '../ledger/resource-leases.js';
import { decideShare } from './share-decision.js';
import { ResourceGate } from './gate.js';
import { leaseMargin, RENEW_MS } from '../config/lease-time.js';

export interface ResourceSpec {
  name: string;
  config: ResourceConfig;
  leaseMs: number;
}

export interface ResourceSnapshot {
  name: string;
  limit: number | null;
  auto: boolean;
  share: number;
  rateShare: number;
  inFlight: number;
  fleetInFlight: number;
  processes: number;
  overloads: number;
  leader: boolean;
}

interface Held {
  spec: ResourceSpec;
  gate: ResourceGate;
  seq: number;
  target: { concurrency: number; rate: number };
  last: ShareAnswer | null;
  overloads: number;
  failing: boolean;
}

export class ResourceCoordinator {
  state: 'running' | 'closed' = 'running';
  readonly #held = new Map<string, Held>();
  readonly #pool: Pool;
  readonly #processId: string;
  readonly #log: Logger;
  readonly #clock: Clock;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> = Promise.resolve();
  #busy = false;

  constructor(pool: Pool, processId: string, specs: readonly ResourceSpec[], log: Logger, clock: Clock = realClock) {
    this.#pool = pool;
    this.#processId = processId;
    this.#log = childLogger(log, { component: 'resources' });
    this.#clock = clock;
    for (const spec of specs)
      this.#held.set(spec.name, {
        spec,
        gate: new ResourceGate(spec.name, clock),
        seq: 0,
        target: { concurrency: Infinity, rate: Infinity },
        last: null,
        overloads: 0,
        failing: false,
      });
  }

  gate(name: string): ResourceGate | undefined {
    return this.#held.get(name)?.gate;
  }

  /** Renews every share now and then every RENEW_MS. */
  start(): void {
    this.#tick();
    this.#timer = setInterval(() => this.#tick(), RENEW_MS);
  }

  #tick(): void {
    // One renewal round at a time: a slow database delays the next one, it never piles them up.
    if (this.#busy) return;
    this.#busy = true;
    this.#ticking = Promise.all([...this.#held.values()].map((h) => this.#renew(h))).then(() => {
      this.#busy = false;
    });
  }

  async #renew(h: Held): Promise<void> {
    if (this.state === 'closed') return;
    const { gate, spec } = h;
    const now = this.#clock.now();
    const leaseValid = now < gate.grant.leaseEnd;
    gate.lowerTo(leaseValid ? h.target.concurrency : 0);
    gate.lowerRate(leaseValid ? h.target.rate : 0);
    const samples = gate.takeSamples();
    h.overloads += samples.overloads;
    const c = spec.config.concurrency;
    try {
      const answer = await renewShare(
        this.#pool,
        {
          resource: spec.name,
          processId: this.#processId,
          concurrency:
            c === undefined ? null : c === 'auto' ? { min: spec.config.min ?? 1, max: spec.config.max ?? 1000 } : c,
          rate: spec.config.ratePerSecond ?? null,
          burst: spec.config.burst ?? Math.max(1, Math.ceil(spec.config.ratePerSecond ?? 0)),
          floor: leaseValid && Number.isFinite(gate.held) ? gate.held : gate.inFlight,
          rateFloor: leaseValid && Number.isFinite(gate.grant.rate) ? gate.grant.rate : 0,
          demand: gate.demand,
          inFlight: gate.inFlight,
          samples: {
            seq: ++h.seq,
            calls: samples.calls,
            ok: samples.ok,
            overloads: samples.overloads,
            latencySumMs: samples.latencySumMs,
          },
          leaseMs: spec.leaseMs,
        },
        decideShare,
      );
      // The row records what is held (calls still in flight count); new calls start only up to the fair
      // share, so a process above it comes down as its calls end, and the next renewal reports less.
      const concurrency = Math.min(answer.concurrency, answer.target.concurrency);
      const rate = Math.min(answer.rate, answer.target.rate);
      const burst =
        answer.rate > 0 && Number.isFinite(answer.rate) ? (answer.burst * rate) / answer.rate : answer.burst;
      gate.apply({ concurrency, rate, burst, leaseEnd: now + spec.leaseMs - leaseMargin(spec.leaseMs) });
      this.#noteLimit(h, answer);
      h.target = answer.target;
      h.last = answer;
      if (h.failing) this.#log.info({ resource: spec.name }, 'resource share renewed again');
      h.failing = false;
    } catch (err) {
      if (!h.failing)
        this.#log.warn(
          { err, resource: spec.name, leaseLeftMs: Math.max(0, Math.round(gate.grant.leaseEnd - now)) },
          'resource share renewal failed; calls stop when the lease runs out',
        );
      h.failing = true;
    }
  }

  /** A learned limit that moves by a step (at least 2, and at least 20%) is worth a line. */
  #noteLimit(h: Held, a: ShareAnswer): void {
    const before = h.last?.limit;
    if (h.spec.config.concurrency !== 'auto' || a.limit === null || before === undefined || before === null) return;
    if (Math.abs(a.limit - before) >= Math.max(2, before * 0.2))
      this.#log.info({ resource: h.spec.name, from: before, to: a.limit, leader: a.leader }, 'learned limit changed');
  }

  snapshot(): ResourceSnapshot[] {
    return [...this.#held.values()].map((h) => ({
      name: h.spec.name,
      limit: h.last?.limit ?? null,
      auto: h.spec.config.concurrency === 'auto',
      share: Number.isFinite(h.gate.grant.concurrency) ? h.gate.grant.concurrency : 0,
      rateShare: Number.isFinite(h.gate.grant.rate) ? h.gate.grant.rate : 0,
      inFlight: h.gate.inFlight,
      fleetInFlight: h.last?.fleetInFlight ?? 0,
      processes: h.last?.processes ?? 0,
      overloads: h.overloads,
      leader: h.last?.leader ?? false,
    }));
  }

  /** Idempotent: stops renewing, gives the shares back, closes the gates. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearInterval(this.#timer);
    await closeAll(this.#log, [
      ['renewal in progress', () => this.#ticking],
      ['resource shares', () => releaseShares(this.#pool, this.#processId)],
      ['gates', () => [...this.#held.values()].forEach((h) => h.gate.close())],
    ]);
  }
}
