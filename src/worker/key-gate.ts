// One run of a task at a time per worker process. Copies of a key (a producer retry, two produces at once,
// a replayed partition) may sit in one segment or in several segments held at once; each copy waits for the
// run in progress, then is skipped when that run finished the task (done or quarantined), or runs when it
// did not (it was given back on a stop, or failed unexpectedly). Finished keys are remembered (bounded), so
// a copy in a segment claimed later is skipped even though its segment's ledger snapshot predates the run;
// but a quarantined key whose copy comes with a snapshot taken after the quarantine, and no longer
// quarantined in it, was requeued (produce --retry-dead, the dashboard): that copy runs.

import type { TaskOutcome } from './run-task.js';

export class KeyGate {
  readonly #running = new Map<string, Promise<TaskOutcome>>();
  /** Insertion-ordered: the oldest finished keys are forgotten first. */
  readonly #finished = new Map<string, { outcome: 'done' | 'dead'; at: number }>();
  readonly #remember: number;

  constructor(remember = 100_000) {
    this.#remember = remember;
  }

  /**
   * Runs `fn` for `key` unless a copy is running (waited for first) or finished here already ('skipped').
   * `snapshot`: when the copy's ledger snapshot was read (performance.now() before the query), and whether
   * it had the key quarantined.
   */
  async run(key: string, fn: () => Promise<TaskOutcome>, snapshot?: { at: number; dead: boolean }): Promise<TaskOutcome> {
    for (let r = this.#running.get(key); r !== undefined; r = this.#running.get(key)) await r.catch(() => {});
    const seen = this.#finished.get(key);
    const requeued = seen?.outcome === 'dead' && snapshot !== undefined && snapshot.at > seen.at && !snapshot.dead;
    if (seen !== undefined && !requeued) return 'skipped';
    // No await between the check above and the set below: two copies can never both get here.
    const p = fn();
    this.#running.set(key, p);
    try {
      const outcome = await p;
      if (outcome === 'done' || outcome === 'dead') this.#markFinished(key, outcome);
      return outcome;
    } finally {
      this.#running.delete(key);
    }
  }

  /** Keys running now (for tests and stats). */
  get running(): number {
    return this.#running.size;
  }

  #markFinished(key: string, outcome: 'done' | 'dead'): void {
    this.#finished.delete(key);
    this.#finished.set(key, { outcome, at: performance.now() });
    if (this.#finished.size > this.#remember) {
      const oldest = this.#finished.keys().next().value;
      if (oldest !== undefined) this.#finished.delete(oldest);
    }
  }
}
