// The worker's intake: claims the oldest ready segment whenever a slot is free, and hands it to the segment
// runner. Backpressure is a plain wait: no claim while tasks of held segments wait for a slot.
//
// States: running -> draining (stop(): no new claims; held segments finish or give their items back)
//         -> stopped (every held segment has left the worker), or failed (a segment hit an error no other
//         segment can get past: the source or the spool is unusable; `run` rejects with it).
// With `exitWhenIdle`, the loop also stops by itself once nothing is ready, claimed or running.

import { SourceError, SpoolError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { realClock, type Clock } from '../core/retry.js';
import type { Claim } from '../spool/claim.js';
import { asSpoolError, type SpoolPaths } from '../spool/layout.js';
import type { SpoolItem } from '../spool/segment.js';
import type { HeldSegment } from './lease-keeper.js';
import { coerceError } from '../core/errors.js';

export interface SegmentSource {
  recoverExpired(): Promise<number>;
  claim(): Promise<Claim | null>;
  read(c: Claim): Promise<SpoolItem[]>;
}

export interface ClaimLoopDeps {
  claimer: SegmentSource;
  /** Runs a held segment to its end (segment-runner.ts). */
  run: (h: HeldSegment) => Promise<void>;
  /** Tasks waiting for a worker slot: no claim while there are any. */
  waiting: () => number;
  /** Items left in the spool (ready and claimed), asked only when idle with exitWhenIdle. */
  spoolItems: () => Promise<number>;
  paths: SpoolPaths;
  pollMs: number;
  exitWhenIdle: boolean;
  log: Logger;
  /** A fatal error: the worker stops starting tasks in the other held segments too. */
  onFatal: (err: unknown) => void;
  clock?: Clock;
}

const SLOT_WAIT_MS = 10;

export class ClaimLoop {
  state: 'running' | 'draining' | 'stopped' | 'failed' = 'running';
  readonly #d: ClaimLoopDeps;
  readonly #clock: Clock;
  readonly #running = new Set<Promise<void>>();
  #fatal: Error | null = null;

  constructor(deps: ClaimLoopDeps) {
    this.#d = deps;
    this.#clock = deps.clock ?? realClock;
  }

  /** Segments being run now. */
  get running(): ReadonlySet<Promise<void>> {
    return this.#running;
  }

  /** No new claims; `run` resolves once the held segments are settled. */
  drain(): void {
    if (this.state === 'running') this.state = 'draining';
  }

  async run(): Promise<void> {
    try {
      while (this.state === 'running') await this.#step();
      await Promise.all(this.#running);
    } catch (err) {
      this.#fail(err);
    }
    if (this.#fatal !== null) {
      this.state = 'failed';
      throw this.#fatal;
    }
    this.state = 'stopped';
  }

  #fail(err: unknown): void {
    if (this.#fatal !== null) return;
    this.#fatal = coerceError(err);
    this.drain();
    this.#d.onFatal(err);
  }

  async #step(): Promise<void> {
    if (this.#d.waiting() > 0) return this.#clock.sleep(SLOT_WAIT_MS);
    const h = await this.#next();
    if (h !== null) return this.#start(h);
    // Idle means nothing ready and nothing claimed: a dead worker's segment comes back when its lease ends.
    if (this.#d.exitWhenIdle && this.#running.size === 0 && (await this.#d.spoolItems()) === 0) {
      this.drain();
      return;
    }
    await this.#clock.sleep(this.#d.pollMs);
  }

  async #next(): Promise<HeldSegment | null> {
    try {
      await this.#d.claimer.recoverExpired();
      const claim = await this.#d.claimer.claim();
      return claim === null
        ? null
        : { claim, items: await this.#d.claimer.read(claim), settled: new Set(), lost: false };
    } catch (err) {
      throw asSpoolError(err, this.#d.paths);
    }
  }

  #start(h: HeldSegment): void {
    const p = this.#d.run(h).catch((err: unknown) => {
      this.#d.log.error({ err, segment: h.claim.segment }, 'segment failed');
      if (err instanceof SourceError || err instanceof SpoolError) this.#fail(err);
    });
    this.#running.add(p);
    void p.finally(() => this.#running.delete(p));
  }
}
