// The fetcher's backpressure: pause the topic when the spool is above its high-water mark (items or bytes),
// resume below the low-water mark. The spool folder is listed every CHECK_MS; between listings the items a
// batch wrote are added to the last count, so a batch never waits on a listing of the whole spool.
// Heartbeats go on while paused: the consumer keeps its partitions. A full disk (disk-guard.ts) is a second
// reason to pause; fetching resumes when no reason is left.
//
// States: open <-> paused -> closed.

import type { Logger } from '../core/logger.js';
import type { SpoolDepth } from '../spool/depth.js';

const CHECK_MS = 500;

export interface WaterMarks {
  highWaterItems: number;
  highWaterBytes: number;
  lowWaterItems: number;
  lowWaterBytes: number;
}

export interface Valve {
  pause(): void;
  resume(): void;
}

export type PauseReason = 'high-water mark' | 'disk full';

export class BackpressureGate {
  state: 'open' | 'paused' | 'closed' = 'open';
  depth: SpoolDepth;
  readonly #reasons = new Set<PauseReason>();
  #reasonAtClose: PauseReason | null = null;
  readonly #marks: WaterMarks;
  readonly #valve: Valve;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #pausedAtClose = false;

  constructor(marks: WaterMarks, valve: Valve, initial: SpoolDepth, log: Logger) {
    this.#marks = marks;
    this.#valve = valve;
    this.depth = initial;
    this.#log = log;
  }

  /** Lists the spool every CHECK_MS with `measure`. */
  watch(measure: () => Promise<SpoolDepth>): void {
    this.#timer = setInterval(() => {
      measure().then(
        (d) => this.apply(d),
        (err: unknown) => this.#log.warn({ err }, 'spool depth check failed'),
      );
    }, CHECK_MS);
  }

  /** A batch made these durable: counted until the next listing. */
  added(items: number, bytes: number, segments: number): void {
    const d = this.depth;
    this.apply({ ...d, items: d.items + items, bytes: d.bytes + bytes, readySegments: d.readySegments + segments });
  }

  apply(d: SpoolDepth): void {
    if (this.state === 'closed') return;
    this.depth = d;
    const m = this.#marks;
    if (!this.#reasons.has('high-water mark') && (d.items >= m.highWaterItems || d.bytes >= m.highWaterBytes)) {
      this.hold('high-water mark');
      this.#log.info({ items: d.items, bytes: d.bytes }, 'spool above high-water mark: fetching paused');
    } else if (this.#reasons.has('high-water mark') && d.items <= m.lowWaterItems && d.bytes <= m.lowWaterBytes) {
      this.#log.info({ items: d.items, bytes: d.bytes }, 'spool below low-water mark: fetching resumed');
      this.release('high-water mark');
    }
  }

  /** Pauses for `reason` (the topic is paused with the first reason). */
  hold(reason: PauseReason): void {
    if (this.state === 'closed') return;
    this.#reasons.add(reason);
    if (this.state === 'open') {
      this.state = 'paused';
      this.#valve.pause();
    }
  }

  /** `reason` is gone; the topic resumes when no reason is left. */
  release(reason: PauseReason): void {
    if (this.state === 'closed') return;
    this.#reasons.delete(reason);
    if (this.state === 'paused' && this.#reasons.size === 0) {
      this.state = 'open';
      this.#valve.resume();
    }
  }

  /** Why fetching is paused (a full disk first: it is the one to act on), or null. */
  get reason(): PauseReason | null {
    if (this.state === 'closed') return this.#reasonAtClose;
    return this.#reasons.has('disk full')
      ? 'disk full'
      : this.#reasons.has('high-water mark')
        ? 'high-water mark'
        : null;
  }

  /** Whether fetching is paused (as it was at close, once closed). */
  get paused(): boolean {
    return this.state === 'paused' || this.#pausedAtClose;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#reasonAtClose = this.reason;
    this.#pausedAtClose = this.state === 'paused';
    this.state = 'closed';
  }
}
