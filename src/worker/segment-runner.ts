// Runs the tasks of one held segment. One read of the ledger first (which keys are in the source, done,
// quarantined or part-done; a database outage is waited out), then keys without a source row are rejected
// as bad messages, and the rest run through the pipeline's stages within the worker's slots, copies of one
// key one at a time (key-gate.ts). Whatever happens, the segment then leaves the worker: finished items are
// done, the others go back to the spool (a stop, a lost lease, a failure).

import type { LimitFunction } from 'p-limit';
import { coerceError, isRetriable } from '../core/errors.js';
import { keyText } from '../core/envelope.js';
import type { Clock } from '../core/retry.js';
import { withDbRetries } from '../db/db-errors.js';
import type { TaskState } from '../ledger/task-state.js';
import type { Claim } from '../spool/claim.js';
import { asSpoolError, type SpoolPaths } from '../spool/layout.js';
import type { SpoolItem } from '../spool/segment.js';
import { KeyGate } from './key-gate.js';
import type { HeldSegment, LeaseKeeper } from './lease-keeper.js';
import { runTask, type RunnerContext, type TaskOutcome } from './run-task.js';
import type { RejectReason } from './reject.js';

/** The worker's live counters: plain data properties, updated per task. */
export interface WorkCounters {
  done: number;
  quarantined: number;
  skipped: number;
  /** Tasks whose key has no source row: recorded as bad messages, not run. */
  rejected: number;
  returned: number;
  segments: number;
  inFlight: number;
  seconds: number;
}

/** What a worker reports (stats(), its heartbeat): the counters and `dead`, the earlier name of `quarantined`. */
export interface WorkStats extends WorkCounters {
  /** @deprecated The name `quarantined` had before 2026-12, kept for scripts that read it. */
  readonly dead: number;
}

export interface SegmentRunnerDeps {
  rc: RunnerContext;
  /** The worker's maxInFlight, shared by every segment it holds. */
  slots: LimitFunction;
  claimer: { complete(c: Claim): Promise<void>; release(c: Claim, unfinished: readonly SpoolItem[]): Promise<void> };
  leases: LeaseKeeper;
  paths: SpoolPaths;
  databaseUrl: string;
  /** What the ledger knows about these keys (ledger/task-state.ts). */
  readState: (keys: string[]) => Promise<TaskState>;
  /** Records tasks that must not run (no source row, another ledger's) as bad messages (reject.ts). */
  reject: (items: SpoolItem[], reason: RejectReason) => Promise<void>;
  /** This deployment's ledger id: a task carrying another is never run. */
  ledger: string;
  stats: WorkCounters;
  runTask?: typeof runTask;
  clock?: Clock;
}

export class SegmentRunner {
  readonly #d: SegmentRunnerDeps;
  readonly #gate = new KeyGate();
  readonly #runTask: typeof runTask;

  constructor(deps: SegmentRunnerDeps) {
    this.#d = deps;
    this.#runTask = deps.runTask ?? runTask;
  }

  /** Runs the segment's tasks, then hands the segment back (complete, or release what is unfinished). */
  async run(h: HeldSegment): Promise<void> {
    this.#d.leases.add(h);
    try {
      const at = performance.now();
      const state = await this.#loadState(h);
      if (state !== null) await this.#runTasks(h, state, at);
    } finally {
      await this.#finish(h).catch((err: unknown) => {
        throw asSpoolError(err, this.#d.paths);
      });
    }
  }

  #stopping(h: HeldSegment): boolean {
    return this.#d.rc.stopping.aborted || this.#d.rc.abort.aborted || h.lost;
  }

  // A stop (or a lost lease) during an outage gives the segment back untouched (null).
  async #loadState(h: HeldSegment): Promise<TaskState | null> {
    const keys = [...new Set(h.items.map((i) => keyText(i.task.key)))];
    try {
      return await withDbRetries(() => this.#d.readState(keys), {
        databaseUrl: this.#d.databaseUrl,
        signal: this.#d.rc.stopping,
        clock: this.#d.clock,
        retriable: (err) => isRetriable(err) && !h.lost,
        onRetry: (err, attempt, delayMs) =>
          this.#d.rc.log.warn(
            { err, attempt, delayMs, segment: h.claim.segment },
            'reading task state failed; retrying',
          ),
      });
    } catch (err) {
      if (isRetriable(err) && this.#stopping(h)) return null;
      throw err;
    }
  }

  async #runTasks(h: HeldSegment, state: TaskState, snapshotAt: number): Promise<void> {
    const { stats } = this.#d;
    const ledger = this.#d.ledger;
    const foreign = h.items.flatMap((item, index) =>
      item.task.ledger === undefined || item.task.ledger === ledger ? [] : [{ item, index }],
    );
    const foreignAt = new Set(foreign.map((f) => f.index));
    const strangers = h.items.flatMap((item, index) =>
      foreignAt.has(index) || state.inSource.has(keyText(item.task.key)) ? [] : [{ item, index }],
    );
    for (const [reason, list] of [
      ['other-ledger', foreign],
      ['not-in-source', strangers],
    ] as const) {
      if (list.length === 0) continue;
      await this.#d.reject(
        list.map((s) => s.item),
        reason,
      );
      for (const s of list) h.settled.add(s.index);
      stats.rejected += list.length;
    }
    await Promise.all(
      h.items.map((item, index) => this.#d.slots(() => this.#runItem(h, item, index, state, snapshotAt))),
    );
    await this.#d.rc.ledger.flush();
  }

  async #runItem(h: HeldSegment, item: SpoolItem, index: number, state: TaskState, snapshotAt: number): Promise<void> {
    // Not started yet when the stop came: it goes back to the spool untouched.
    if (this.#stopping(h) || h.settled.has(index)) return;
    const { stats, rc } = this.#d;
    stats.inFlight++;
    let outcome: TaskOutcome;
    try {
      const key = keyText(item.task.key);
      outcome = await this.#gate.run(key, () => this.#runTask(item, state, rc), {
        at: snapshotAt,
        quarantined: state.quarantined.has(key),
      });
    } catch (err) {
      // Not a ledger refusal (those quarantine the task): a bug or an unusable spool quarantine.
      rc.log.error(
        { err: coerceError(err), key: rc.showKey?.(keyText(item.task.key)) ?? item.task.key },
        'task failed unexpectedly; returning it to the spool',
      );
      outcome = 'aborted';
    } finally {
      stats.inFlight--;
    }
    if (outcome === 'aborted') return;
    h.settled.add(index);
    stats[outcome]++;
    // The metric keeps its first label for a quarantine ('dead'): dashboards and alerts already select on it.
    rc.metrics?.tasks.inc({ pipeline: rc.pipelineName, outcome: outcome === 'quarantined' ? 'dead' : outcome });
  }

  async #finish(h: HeldSegment): Promise<void> {
    this.#d.leases.delete(h);
    if (h.lost) return;
    const { claimer, stats } = this.#d;
    if (h.settled.size === h.items.length) {
      await claimer.complete(h.claim);
      stats.segments++;
      return;
    }
    const unfinished = h.items.filter((_, i) => !h.settled.has(i));
    await claimer.release(h.claim, unfinished);
    stats.returned += unfinished.length;
    this.#d.rc.log.info(
      { segment: h.claim.segment, returned: unfinished.length },
      'unfinished items returned to the spool',
    );
  }
}
