// One run of a task at a time per worker process. Copies of a key (a producer retry, two produces at once,
// a replayed partition) may sit in one segment or in several segments held at once; each copy waits for the
// run in progress, then is skipped when that run finished the task (done or quarantined), or runs when it
// did not (it was given back on a stop, or failed unexpectedly). Finished keys are remembered (bounded), so
// a copy in a segment claimed later is skipped even though its segment's ledger snapshot predates the run;
// but a quarantined key whose copy comes with a snapshot taken after the quarantine, and no longer
// quarantined in it, was requeued (produce --retry-quarantined, the dashboard): that copy runs.
//
// Memory: what is running, plus a window of the last `remember` (100,000) finished keys, in a ring: a Map
// entry (key -> ring slot) and, per slot, the key and the time it finished (whole ms, negative for a
// quarantine) in preallocated arrays: about 70 bytes plus the key's string, which the task held anyway. No
// object per key. A ring, not the Map's own insertion order: taking the oldest entry of a Map whose front
// is deleted over and over walks every deleted slot before it (V8 compacts only when the table grows), a cost
// that grows with the keys seen once the window is full.

import type { TaskOutcome } from './run-task.js';

export class KeyGate {
  readonly #running = new Map<string, Promise<TaskOutcome>>();
  /** Finished key -> its slot in the ring. */
  readonly #finished = new Map<string, number>();
  /**
   * The ring: slot i holds a key and when it finished (performance.now(), whole ms, + 1 so that it is never 0),
   * negated when it was quarantined.
   */
  readonly #keys: Array<string | undefined>;
  readonly #times: Float64Array;
  /** The next slot to write, which holds the oldest key once the ring is full. */
  #head = 0;

  constructor(remember = 100_000) {
    this.#keys = new Array<string | undefined>(remember).fill(undefined);
    this.#times = new Float64Array(remember);
  }

  /**
   * Runs `fn` for `key` unless a copy is running (waited for first) or finished here already ('skipped').
   * `snapshot`: when the copy's ledger snapshot was read (performance.now() before the query), and whether
   * it had the key quarantined.
   */
  async run(
    key: string,
    fn: () => Promise<TaskOutcome>,
    snapshot?: { at: number; quarantined: boolean },
  ): Promise<TaskOutcome> {
    for (let r = this.#running.get(key); r !== undefined; r = this.#running.get(key)) await r.catch(() => {});
    const slot = this.#finished.get(key);
    const seen = slot === undefined ? undefined : this.#times[slot]!;
    // A quarantine seen here, then a snapshot read after it that no longer has the key quarantined: requeued.
    const requeued =
      seen !== undefined && seen < 0 && snapshot !== undefined && snapshot.at > -seen - 1 && !snapshot.quarantined;
    if (seen !== undefined && !requeued) return 'skipped';
    // No await between the check above and the set below: two copies can never both get here.
    const p = fn();
    this.#running.set(key, p);
    try {
      const outcome = await p;
      if (outcome === 'done' || outcome === 'quarantined') this.#markFinished(key, outcome);
      return outcome;
    } finally {
      this.#running.delete(key);
    }
  }

  /** Keys running now (for tests and stats). */
  get running(): number {
    return this.#running.size;
  }

  /** Finished keys remembered now (bounded by `remember`). */
  get remembered(): number {
    return this.#finished.size;
  }

  #markFinished(key: string, outcome: 'done' | 'quarantined'): void {
    const slot = this.#head;
    const oldest = this.#keys[slot];
    // The slot's key is forgotten unless it finished again since (it then lives in a newer slot).
    if (oldest !== undefined && this.#finished.get(oldest) === slot) this.#finished.delete(oldest);
    const at = Math.ceil(performance.now()) + 1;
    this.#keys[slot] = key;
    this.#times[slot] = outcome === 'quarantined' ? -at : at;
    this.#finished.set(key, slot);
    this.#head = slot + 1 === this.#keys.length ? 0 : slot + 1;
  }
}
