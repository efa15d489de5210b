// One task through the pipeline's stages.
//
// Per stage: a milestone from an earlier run? reuse its output. Otherwise, within the stage's concurrency
// and rate limits, run it with a signal that fires on its timeout and on a forced shutdown; on success
// check that the output can be stored, then write the milestone; on failure write an attempt row, then
// either retry after backoff (retriable, attempts left) or quarantine the task (NonRetriableError, a bug
// such as a TypeError, or attempts exhausted). After the last stage, the result row. Every write is
// awaited: "done" means the ledger has it.
//
// Recording is not the stage: a write the database refuses (LedgerWriteError) quarantines the task with
// that reason, and never counts as a failure of the stage or sends the task back to the spool to run again.
// Only a writer closed during an outage (LedgerClosedError: the worker is stopping) gives the task back.

import { hash } from 'node:crypto';
import type { PipelineConfig, ResolvedStage } from '../config/config.js';
import { coerceError, isBug, isRetriable, SluiceError } from '../core/errors.js';
import { childLogger, type Logger } from '../core/logger.js';
import type { StageMetrics } from '../core/metrics.js';
import { keyText } from '../core/envelope.js';
import { LedgerClosedError, LedgerWriteError, type LedgerWriter } from '../ledger/ledger-writer.js';
import type { ResultsInfo } from '../user-tables/table-info.js';
import type { RecomputeRequest, StoredMilestone, TaskState } from '../ledger/task-state.js';
import type { SpoolItem } from '../spool/segment.js';
import { stageLimits, type StageLimits } from './limits.js';
import { withRetries, type RetryPolicy } from '../core/retry.js';
import type { ResourceCoordinator } from '../resources/coordinator.js';
import type { ResourceGate } from '../resources/gate.js';
import { isOverload } from '../resources/overload.js';
import { outputProblem } from './output-limits.js';
import { userRow } from './result-row.js';

export type TaskOutcome = 'done' | 'quarantined' | 'skipped' | 'aborted';

export class StageTimeoutError extends SluiceError {
  constructor(stage: string, ms: number) {
    super('STAGE_TIMEOUT', `stage ${stage} timed out after ${ms} ms`, { retriable: true });
  }
}

export interface RunnerContext {
  pipelineName: string;
  pipeline: PipelineConfig;
  ledger: LedgerWriter;
  workerId: string;
  log: Logger;
  /** Fires on the first stop: no stage starts after it (running ones may finish). */
  stopping: AbortSignal;
  /** Fires when running stages must give up (grace period over, or a forced stop). */
  abort: AbortSignal;
  limits: Map<string, StageLimits>;
  /** Largest stage output stored (worker.maxOutputBytes, capped by the server's max_allowed_packet). */
  maxOutputBytes: number;
  /** The user's result table, when the pipeline has one: the result row goes there. */
  results?: ResultsInfo;
  /** A key as logs show it (a UUID key as 8-4-4-4-12); its canonical text when not given. */
  showKey?: (key: string) => string;
  /** Prometheus counters and histograms, when the metrics endpoint is on. */
  metrics?: StageMetrics;
  /** The fleet-wide resources the pipeline's stages use, when any. */
  resources?: ResourceCoordinator;
  /** Called when a task is quarantined, to move it to the spool's quarantine folder. */
  onQuarantined: (item: SpoolItem, stage: string, err: Error, attempts: number) => Promise<void>;
}

export function buildLimits(pipeline: PipelineConfig): Map<string, StageLimits> {
  return new Map(pipeline.stages.map((s) => [s.name, stageLimits(s.concurrency, s.ratePerSecond)]));
}

/** Thrown inside a stage's queue slot when the worker is stopping: the stage is not started. */
class NotStarted extends Error {}

/** Carries an error out of the retry loop untouched: it is not the stage's to retry. */
class NotRetried extends Error {
  constructor(readonly inner: unknown) {
    super('not retried');
  }
}

/**
 * Runs `fn` with a signal that fires on `timeoutMs` or when `outer` aborts; a handler that ignores it is
 * abandoned. The AbortController behind the signal is made only when the stage reads it (`signal()`): most
 * calls finish without anyone listening, and each controller is an EventTarget (bench:profile).
 */
/** Callbacks of the calls running under a signal: one listener per signal, not an add and a remove per call. */
const watchers = new WeakMap<AbortSignal, Set<() => void>>();

function onAbort(signal: AbortSignal, fn: () => void): () => void {
  let set = watchers.get(signal);
  if (set === undefined) {
    const calls = new Set<() => void>();
    signal.addEventListener(
      'abort',
      () => {
        for (const f of calls) f();
        calls.clear();
      },
      { once: true },
    );
    watchers.set(signal, calls);
    set = calls;
  }
  const s = set;
  s.add(fn);
  return () => void s.delete(fn);
}

function withTimeout<T>(
  stage: string,
  timeoutMs: number,
  outer: AbortSignal,
  fn: (signal: () => AbortSignal) => Promise<T>,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let ctl: AbortController | undefined;
    let reason: unknown;
    let settled = false;
    let unwatch = (): void => {};
    const end = (): void => {
      settled = true;
      clearTimeout(timer);
      unwatch();
    };
    const fail = (why: unknown): void => {
      if (settled) return;
      end();
      reason = why;
      ctl?.abort(why);
      // As thrown: overload detection reads the stage's own error (its code, status, cause).
      reject(why);
    };
    const timer = setTimeout(() => fail(new StageTimeoutError(stage, timeoutMs)), timeoutMs);
    // An 'abort' listener added to a signal that already fired is never called.
    if (outer.aborted) return fail(outer.reason);
    unwatch = onAbort(outer, () => fail(outer.reason));
    const signal = (): AbortSignal => {
      if (ctl === undefined) {
        ctl = new AbortController();
        if (reason !== undefined) ctl.abort(reason);
      }
      return ctl.signal;
    };
    let running: Promise<T>;
    try {
      running = fn(signal);
    } catch (err) {
      // A stage that throws before its first await.
      return fail(err);
    }
    running.then((value) => {
      if (settled) return;
      end();
      resolve(value);
    }, fail);
  });
}

/**
 * A call counted against a fleet-wide resource: it waits for a permit (a stop gives up waiting), and reports how it
 * went.
 */
async function throughGate(
  gate: ResourceGate,
  timeoutMs: number,
  rc: RunnerContext,
  call: () => Promise<unknown>,
): Promise<unknown> {
  let done: Awaited<ReturnType<ResourceGate['acquire']>>;
  try {
    // `stopping` fires first on every way out (a drain, a failure, the grace period's end).
    done = await gate.acquire(timeoutMs, rc.stopping);
  } catch {
    throw new NotStarted();
  }
  const t0 = performance.now();
  try {
    const out = await call();
    done({ ok: true, overload: false, latencyMs: performance.now() - t0 });
    return out;
  } catch (err) {
    done({ ok: false, overload: isOverload(err), latencyMs: performance.now() - t0 });
    throw err;
  }
}

function observe(rc: RunnerContext, stage: string, outcome: 'processed' | 'failed', since: number): void {
  if (rc.metrics === undefined) return;
  const labels = { pipeline: rc.pipelineName, stage };
  rc.metrics[outcome].inc(labels);
  rc.metrics.duration.observe(labels, (performance.now() - since) / 1000);
}

/**
 * One task on its way through the stages. Its logger (a pino child with the key) is made when something
 * logs, not per task: at the default level a task that goes well logs nothing, and a child logger made per
 * task is a cost every task pays.
 */
class Task {
  readonly outputs: Record<string, unknown> = {};
  /** The stage running, then the last one: where a failure to record is charged. */
  stage = '';
  /** The most attempts any stage took. */
  attempts = 1;
  #log: Logger | undefined;

  constructor(
    readonly item: SpoolItem,
    readonly key: string,
    readonly parent: Logger,
    readonly show?: (key: string) => string,
  ) {}

  get log(): Logger {
    return (this.#log ??= childLogger(this.parent, { key: this.show?.(this.key) ?? this.key }));
  }
}

/**
 * What a stage call receives (define.ts StageContext): `signal`, `outputs` (a copy, so a stage cannot change
 * what the next one sees) and `log` are made only when the stage reads them. They are the object's own
 * enumerable getters, so a stage that copies its context (`{ ...ctx, extra }`) passes real values on.
 */
function stageCall(
  task: { key: string | number; parts?: Array<string | number>; payload: unknown; attempt: number },
  attempt: number,
  signal: () => AbortSignal,
  stage: string,
  of: Task,
) {
  let outputs: Record<string, unknown> | undefined;
  let log: Logger | undefined;
  return {
    task,
    attempt,
    get signal(): AbortSignal {
      return signal();
    },
    get outputs(): Record<string, unknown> {
      return (outputs ??= { ...of.outputs });
    },
    get log(): Logger {
      return (log ??= childLogger(of.log, { stage }));
    },
  };
}

type StageResult =
  | { ok: true; output: unknown; json: string; attempt: number; ms: number }
  | { ok: false; aborted: true }
  | { ok: false; aborted: false; err: Error; attempt: number };

/** One stage, with its retries; the failures are recorded as attempts, the success is not yet. */
async function runStage(
  t: Task,
  stage: ResolvedStage,
  input: unknown,
  state: TaskState,
  rc: RunnerContext,
): Promise<StageResult> {
  const first = (state.failures.get(`${t.key}\u0000${stage.name}`) ?? 0) + 1;
  try {
    // The common case, a first try that works, goes without the retry machinery (bench:work measures it).
    return await runOnce(t, stage, input, first, rc);
  } catch (err) {
    return retryStage(err, t, stage, input, first, rc);
  }
}

const policies = new WeakMap<ResolvedStage, RetryPolicy>();

function stagePolicy(stage: ResolvedStage): RetryPolicy {
  let p = policies.get(stage);
  if (p === undefined) {
    const r = stage.retry;
    p = { maxAttempts: r.maxAttempts, initialDelayMs: r.initialDelayMs, maxDelayMs: r.maxDelayMs, jitter: 'full' };
    policies.set(stage, p);
  }
  return p;
}

/** After a failed first try: the retry policy judges that failure first, then runs the next attempts. */
async function retryStage(
  firstErr: unknown,
  t: Task,
  stage: ResolvedStage,
  input: unknown,
  first: number,
  rc: RunnerContext,
): Promise<StageResult> {
  let last = first;
  try {
    return await withRetries(
      async (attempt) => {
        last = attempt;
        if (attempt === first) throw firstErr;
        return runOnce(t, stage, input, attempt, rc);
      },
      stagePolicy(stage),
      {
        firstAttempt: first,
        signal: rc.abort,
        retriable: (err) =>
          !(err instanceof NotRetried) && !(err instanceof NotStarted) && !isBug(err) && isRetriable(err),
        onRetry: (err, attempt, delayMs) => {
          rc.metrics?.retried.inc({ pipeline: rc.pipelineName, stage: stage.name });
          // Expected on a flaky service: one line without the stack; the final failure is logged in full.
          t.log.info(
            { stage: stage.name, attempt, delayMs, errorClass: err.name, error: err.message },
            'stage failed; retrying',
          );
        },
      },
    );
  } catch (err) {
    if (err instanceof NotStarted || rc.abort.aborted) return { ok: false, aborted: true };
    if (err instanceof NotRetried) throw err.inner;
    return { ok: false, aborted: false, err: err as Error, attempt: last };
  }
}

/** One run of a stage; a failure is recorded as an attempt row and rethrown for the retry policy to judge. */
async function runOnce(
  t: Task,
  stage: ResolvedStage,
  input: unknown,
  attempt: number,
  rc: RunnerContext,
): Promise<Extract<StageResult, { ok: true }>> {
  if (rc.abort.aborted || rc.stopping.aborted) throw new NotStarted();
  const limits = rc.limits.get(stage.name)!;
  const { timeoutMs } = stage;
  const { task } = t.item;
  const s0 = performance.now();
  let err: Error;
  try {
    const output = await limits.limit(async () => {
      if (rc.stopping.aborted || rc.abort.aborted) throw new NotStarted();
      await limits.rate?.acquire(rc.abort);
      const info =
        task.parts === undefined
          ? { key: task.key, payload: task.payload, attempt: task.attempt }
          : { key: task.key, parts: task.parts, payload: task.payload, attempt: task.attempt };
      const call = (): Promise<unknown> =>
        withTimeout(stage.name, timeoutMs, rc.abort, (signal) =>
          Promise.resolve(stage.run(input, stageCall(info, attempt, signal, stage.name, t))),
        );
      const gate = stage.resource === undefined ? undefined : rc.resources?.gate(stage.resource);
      return gate === undefined ? call() : throughGate(gate, timeoutMs, rc, call);
    });
    observe(rc, stage.name, 'processed', s0);
    return {
      ok: true,
      output,
      json: JSON.stringify(output) ?? 'null',
      attempt,
      ms: Math.round(performance.now() - s0),
    };
  } catch (thrown) {
    if (thrown instanceof NotStarted || rc.abort.aborted) throw new NotStarted();
    err = coerceError(thrown);
  }
  observe(rc, stage.name, 'failed', s0);
  const retriable = !isBug(err) && isRetriable(err);
  try {
    await rc.ledger.write({
      kind: 'attempt',
      pipeline: rc.pipelineName,
      key: t.key,
      stage: stage.name,
      attempt,
      errorClass: err.name,
      errorMessage: err.message,
      retriable,
      workerId: rc.workerId,
    });
  } catch (recording) {
    // Not the stage's failure: the ledger's, handled by the task (aborted or quarantined), never retried here.
    throw new NotRetried(recording);
  }
  throw err;
}

/**
 * Quarantines the task: the quarantine row with its payload, or, if the database refuses that, with what
 * can be saved (no payload); then the spool's quarantine file, which keeps the whole task either way.
 */
async function quarantine(
  t: Task,
  stage: string,
  err: Error,
  attempts: number,
  rc: RunnerContext,
): Promise<TaskOutcome> {
  const why =
    err instanceof LedgerWriteError
      ? 'not recordable'
      : !isRetriable(err)
        ? isBug(err)
          ? 'bug'
          : 'non-retriable'
        : 'attempts exhausted';
  t.log.error({ stage: stage, attempt: attempts, why, err }, 'task quarantined');
  const payload = JSON.stringify(t.item.task.payload) ?? 'null';
  const quarantined = {
    kind: 'quarantined' as const,
    pipeline: rc.pipelineName,
    key: t.key,
    stage,
    errorClass: err.name,
    errorMessage: err.message,
    attempts,
    workerId: rc.workerId,
  };
  try {
    await rc.ledger.write({
      ...quarantined,
      payload: Buffer.byteLength(payload) <= rc.maxOutputBytes ? payload : null,
    });
  } catch (first) {
    if (first instanceof LedgerClosedError) return 'aborted';
    try {
      await rc.ledger.write({ ...quarantined, payload: null, errorMessage: err.message.slice(0, 1000) });
    } catch (second) {
      if (second instanceof LedgerClosedError) return 'aborted';
      t.log.error({ err: second }, 'quarantine row refused; the task is kept in the spool quarantine only');
    }
  }
  await rc.onQuarantined(t.item, stage, err, attempts);
  return 'quarantined';
}

/**
 * Waits for the result and the last milestone written with it (the ledger commits the milestone first in
 * the same flush). The result decides: written, the task is done even if its milestone was refused (a
 * retry has nothing to skip to); refused or closed, its error is the task's.
 */
async function settleResult(result: Promise<void>, milestone: Promise<void> | undefined, t: Task): Promise<void> {
  const [r, m] = await Promise.allSettled([result, milestone]);
  if (r.status === 'rejected') throw r.reason;
  if (m.status === 'rejected')
    t.log.warn({ err: m.reason }, 'last milestone not written; the result is, so the task is done');
}

/** What the stages gave: the last output (as a value and as JSON), the most attempts any stage took. */
interface StagesDone {
  input: unknown;
  json: string;
  totalAttempts: number;
  /** The last stage's milestone, written with the result (below), not before it: one ledger flush per task. */
  lastMilestone: Promise<void> | undefined;
}

const md5 = (json: string): Buffer => hash('md5', json, 'buffer');

/** Whether a stage's new output is the one it stored before (by hash; a milestone older than the hash, by its text). */
const sameOutput = (previous: StoredMilestone, json: string, h: Buffer): boolean =>
  previous.hash === null ? previous.output === json : previous.hash === h.toString('hex');

/** What the task's stages stored, and which of them this run deleted (they no longer followed from their input). */
interface Stored {
  milestones: Map<string, StoredMilestone> | undefined;
  unstaged: Set<string>;
}

/**
 * The milestone of a stage that ran. A first run inserts it; one that replaces a stored milestone (a recompute, or
 * a milestone of another version) does so only while the stored one is the version read, and when the output differs
 * from the stored one, first deletes the later stages' milestones: they followed from the old output.
 */
function milestoneWrites(
  t: Task,
  rc: RunnerContext,
  i: number,
  r: Extract<StageResult, { ok: true }>,
  previous: StoredMilestone | undefined,
  stored: Stored,
): { written: Promise<void>; changed: boolean } {
  const stage = rc.pipeline.stages[i]!;
  const h = md5(r.json);
  const base = { pipeline: rc.pipelineName, key: t.key, stage: stage.name, output: r.json, durationMs: r.ms, hash: h };
  if (stored.milestones === undefined)
    return {
      written: rc.ledger.write({ kind: 'milestone', ...base, attempt: r.attempt, version: stage.version }),
      changed: true,
    };
  const changed = previous === undefined || !sameOutput(previous, r.json, h);
  const writes: Array<Promise<void>> = [];
  if (changed)
    for (const later of rc.pipeline.stages.slice(i + 1))
      if (stored.milestones.has(later.name) && !stored.unstaged.has(later.name)) {
        stored.unstaged.add(later.name);
        writes.push(rc.ledger.write({ kind: 'unstage', pipeline: rc.pipelineName, key: t.key, stage: later.name }));
      }
  // A milestone this run deleted is gone: written anew, whatever the version read.
  const replaced = stored.unstaged.delete(stage.name) ? null : (previous?.version ?? null);
  writes.push(rc.ledger.write({ kind: 'restage', ...base, attempt: r.attempt, version: stage.version, replaced }));
  return { written: writes.length === 1 ? writes[0]! : Promise.all(writes).then(() => {}), changed };
}

/**
 * A stored milestone reused. One this run deleted (an earlier stage's output changed, then came out as before on a
 * stage between) is written back as it was.
 */
function reuse(t: Task, rc: RunnerContext, name: string, previous: StoredMilestone, stored: Stored): Promise<void> {
  if (!stored.unstaged.delete(name)) return Promise.resolve();
  const json = previous.output ?? 'null';
  return rc.ledger.write({
    kind: 'restage',
    pipeline: rc.pipelineName,
    key: t.key,
    stage: name,
    output: json,
    durationMs: previous.durationMs,
    attempt: 1,
    version: previous.version,
    hash: md5(json),
    replaced: null,
  });
}

/**
 * The stages of one task in order. A stored milestone of the stage's current version is reused, unless the task is
 * being recomputed from this stage (--from-stage) or an earlier stage's output just changed. Early cutoff: a stage
 * whose output comes out as before leaves the later milestones current.
 */
async function runStages(
  t: Task,
  state: TaskState,
  rc: RunnerContext,
  forcedStage: string | undefined,
): Promise<StagesDone | TaskOutcome> {
  const stored: Stored = { milestones: state.milestones.get(t.key), unstaged: new Set() };
  const done: StagesDone = { input: t.item.task.payload, json: '', totalAttempts: 1, lastMilestone: undefined };
  done.json = JSON.stringify(done.input) ?? 'null';
  const debug = rc.log.isLevelEnabled('debug');
  const stages = rc.pipeline.stages;
  let upstreamChanged = false;
  for (const [i, stage] of stages.entries()) {
    t.stage = stage.name;
    const previous = stored.milestones?.get(stage.name);
    if (
      previous !== undefined &&
      previous.version === stage.version &&
      !upstreamChanged &&
      forcedStage !== stage.name
    ) {
      const restored = reuse(t, rc, stage.name, previous, stored);
      if (i < stages.length - 1) await restored;
      else done.lastMilestone = restored;
      done.input = previous.output === null ? null : (JSON.parse(previous.output) as unknown);
      done.json = previous.output ?? 'null';
      t.outputs[stage.name] = done.input;
      continue;
    }
    const r = await runStage(t, stage, done.input, state, rc);
    if (!r.ok) return r.aborted ? 'aborted' : await quarantine(t, stage.name, r.err, r.attempt, rc);
    const problem = outputProblem(stage.name, r.json, rc.maxOutputBytes);
    if (problem !== null) {
      await rc.ledger.write({
        kind: 'attempt',
        pipeline: rc.pipelineName,
        key: t.key,
        stage: stage.name,
        attempt: r.attempt,
        errorClass: problem.name,
        errorMessage: problem.message,
        retriable: false,
        workerId: rc.workerId,
      });
      return await quarantine(t, stage.name, problem, r.attempt, rc);
    }
    const m = milestoneWrites(t, rc, i, r, previous, stored);
    upstreamChanged = m.changed;
    if (i < stages.length - 1) await m.written;
    else {
      // Observed by settleResult; this keeps a rejection from going unhandled on any other way out.
      m.written.catch(() => {});
      done.lastMilestone = m.written;
    }
    done.json = r.json;
    if (debug) t.log.debug({ stage: stage.name, attempt: r.attempt, ms: r.ms }, 'stage done');
    t.outputs[stage.name] = r.output;
    done.input = r.output;
    done.totalAttempts = Math.max(done.totalAttempts, r.attempt);
    t.attempts = done.totalAttempts;
  }
  return done;
}

export async function runTask(item: SpoolItem, state: TaskState, rc: RunnerContext): Promise<TaskOutcome> {
  const key = keyText(item.task.key);
  const recompute = state.recompute.get(key);
  if (state.quarantined.has(key) || (state.done.has(key) && recompute === undefined)) {
    // A quarantined task is not recomputed: its request goes (a requeue and the next --recompute find it again).
    if (recompute !== undefined) await recomputed(new Task(item, key, rc.log, rc.showKey), rc, recompute);
    return 'skipped';
  }
  const started = new Date();
  const t0 = performance.now();
  const t = new Task(item, key, rc.log, rc.showKey);
  t.stage = rc.pipeline.stages[0]?.name ?? '';
  try {
    const ran = await runStages(t, state, rc, recompute?.forced === true ? recompute.fromStage : undefined);
    if (typeof ran === 'string') {
      if (ran === 'quarantined' && recompute !== undefined) await recomputed(t, rc, recompute);
      return ran;
    }
    const replace = recompute !== undefined;
    let result: Promise<void>;
    if (rc.results !== undefined) {
      const mapped = userRow(item.task, ran.input, rc.results);
      if (mapped instanceof Error) {
        await ran.lastMilestone;
        return await quarantine(t, t.stage, mapped, ran.totalAttempts, rc);
      }
      result = rc.ledger.write({
        kind: 'row',
        pipeline: rc.pipelineName,
        key,
        results: rc.results,
        values: mapped,
        replace,
      });
    } else {
      // With a result table of the user's, its row is the result, and the milestones (stage, attempt, duration)
      // are sluice's bookkeeping: a sluice_results row as well would be a third write per task.
      result = rc.ledger.write({
        kind: 'result',
        pipeline: rc.pipelineName,
        key,
        output: ran.json,
        attempts: ran.totalAttempts,
        workerId: rc.workerId,
        startedAt: started,
        finishedAt: new Date(),
        durationMs: Math.round(performance.now() - t0),
        replace,
      });
    }
    await settleResult(result, ran.lastMilestone, t);
    if (recompute !== undefined) await recomputed(t, rc, recompute);
    return 'done';
  } catch (err) {
    if (err instanceof LedgerClosedError) return 'aborted';
    if (err instanceof LedgerWriteError) return quarantine(t, t.stage, err, t.attempts, rc);
    throw err;
  }
}

/**
 * The recompute request is carried out (or given up: the task was quarantined): deleted after the new result is
 * written, never with it, so that a result the database refused leaves the request for the next --recompute. A delete
 * that fails leaves a request the next --recompute publishes again: with every milestone current it reruns nothing
 * (a --from-stage request reruns that stage) and rewrites the same result.
 */
async function recomputed(t: Task, rc: RunnerContext, req: RecomputeRequest): Promise<void> {
  try {
    await rc.ledger.write({ kind: 'recomputed', pipeline: rc.pipelineName, key: t.key, runId: req.runId });
  } catch (err) {
    if (err instanceof LedgerClosedError) return;
    t.log.warn({ err }, 'recompute request not cleared; the next --recompute publishes the task again');
  }
}
