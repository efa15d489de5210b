// One task through the pipeline's stages.
//
// Per stage: a milestone from an earlier run? reuse its output. Otherwise, within the stage's concurrency
// and rate limits, run it with a signal that fires on its timeout and on a forced shutdown; on success write
// the milestone; on failure write an attempt row, then either retry after backoff (retriable, attempts left)
// or quarantine the task (NonRetriableError, a bug such as a TypeError, or attempts exhausted). After the
// last stage, the result row. Every write is awaited: "done" means the ledger has it.

import type { PipelineConfig } from '../core/config.js';
import { stageDefaults } from '../core/config.js';
import { coerceError, isBug, isRetriable, SluiceError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { StageMetrics } from '../core/metrics.js';
import type { LedgerWriter } from '../db/ledger.js';
import type { TaskState } from '../db/task-state.js';
import type { SpoolItem } from '../spool/segment.js';
import { backoffMs, sleep, stageLimits, type StageLimits } from './limits.js';

export type TaskOutcome = 'done' | 'dead' | 'skipped' | 'aborted';

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
  /** Prometheus counters and histograms, when the metrics endpoint is on. */
  metrics?: StageMetrics;
  /** Called when a task is quarantined, to move it to the spool's quarantine folder. */
  onDead: (item: SpoolItem, stage: string, err: Error, attempts: number) => Promise<void>;
}

export function buildLimits(pipeline: PipelineConfig): Map<string, StageLimits> {
  return new Map(pipeline.stages.map((s) => [s.name, stageLimits(s.concurrency ?? stageDefaults.concurrency, s.ratePerSecond)]));
}

const taskKey = (k: string | number): string => String(k);

/** Thrown inside a stage's queue slot when the worker is stopping: the stage is not started. */
class NotStarted extends Error {}

/** Runs `fn` with a signal that fires on `timeoutMs` or when `outer` aborts; a handler that ignores it is abandoned. */
async function withTimeout<T>(stage: string, timeoutMs: number, outer: AbortSignal, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new StageTimeoutError(stage, timeoutMs)), timeoutMs);
  const onOuter = (): void => ctl.abort(outer.reason);
  // An 'abort' listener added to a signal that already fired is never called.
  if (outer.aborted) ctl.abort(outer.reason);
  else outer.addEventListener('abort', onOuter, { once: true });
  try {
    return await Promise.race([
      fn(ctl.signal),
      new Promise<never>((_, reject) => {
        if (ctl.signal.aborted) reject(ctl.signal.reason);
        ctl.signal.addEventListener('abort', () => reject(ctl.signal.reason), { once: true });
      }),
    ]);
  } finally {
    clearTimeout(timer);
    outer.removeEventListener('abort', onOuter);
  }
}

function observe(rc: RunnerContext, stage: string, outcome: 'processed' | 'failed', since: number): void {
  if (rc.metrics === undefined) return;
  const labels = { pipeline: rc.pipelineName, stage };
  rc.metrics[outcome].inc(labels);
  rc.metrics.duration.observe(labels, (performance.now() - since) / 1000);
}

export async function runTask(item: SpoolItem, state: TaskState, rc: RunnerContext): Promise<TaskOutcome> {
  const key = taskKey(item.task.key);
  if (state.done.has(key) || state.dead.has(key)) return 'skipped';
  const started = new Date();
  const t0 = performance.now();
  const outputs: Record<string, unknown> = {};
  const stored = state.milestones.get(key);
  let input: unknown = item.task.payload;
  let totalAttempts = 1;
  const log = rc.log.child({ key });

  for (const stage of rc.pipeline.stages) {
    const previous = stored?.get(stage.name);
    if (previous !== undefined) {
      input = previous === null ? null : (JSON.parse(previous) as unknown);
      outputs[stage.name] = input;
      continue;
    }
    const retry = { ...stageDefaults.retry, ...stage.retry };
    const timeoutMs = stage.timeoutMs ?? stageDefaults.timeoutMs;
    const limits = rc.limits.get(stage.name)!;
    let attempt = (state.failures.get(`${key}\u0000${stage.name}`) ?? 0) + 1;
    for (;;) {
      if (rc.abort.aborted || rc.stopping.aborted) return 'aborted';
      const s0 = performance.now();
      try {
        const stageInput = input;
        const output = await limits.limit(async () => {
          if (rc.stopping.aborted || rc.abort.aborted) throw new NotStarted();
          await limits.rate?.acquire(rc.abort);
          return withTimeout(stage.name, timeoutMs, rc.abort, (signal) =>
            Promise.resolve(stage.run(stageInput, { task: { key: item.task.key, payload: item.task.payload, attempt: item.task.attempt }, outputs: { ...outputs }, attempt, signal, log: log.child({ taskStage: stage.name }) })),
          );
        });
        observe(rc, stage.name, 'processed', s0);
        const json = JSON.stringify(output) ?? 'null';
        await rc.ledger.write({ kind: 'milestone', pipeline: rc.pipelineName, key, stage: stage.name, output: json, durationMs: Math.round(performance.now() - s0), attempt });
        log.debug({ taskStage: stage.name, attempt, ms: Math.round(performance.now() - s0) }, 'stage done');
        outputs[stage.name] = output;
        input = output;
        totalAttempts = Math.max(totalAttempts, attempt);
        break;
      } catch (thrown) {
        if (thrown instanceof NotStarted || rc.abort.aborted) return 'aborted';
        const err = coerceError(thrown);
        const retriable = !isBug(err) && isRetriable(err);
        observe(rc, stage.name, 'failed', s0);
        await rc.ledger.write({ kind: 'attempt', pipeline: rc.pipelineName, key, stage: stage.name, attempt, errorClass: err.name, errorMessage: err.message, retriable, workerId: rc.workerId });
        if (!retriable || attempt >= retry.maxAttempts) {
          const why = !retriable ? (isBug(err) ? 'bug' : 'non-retriable') : 'attempts exhausted';
          log.error({ taskStage: stage.name, attempt, why, err }, 'task quarantined');
          await rc.ledger.write({ kind: 'dead', pipeline: rc.pipelineName, key, stage: stage.name, errorClass: err.name, errorMessage: err.message, attempts: attempt, payload: JSON.stringify(item.task.payload) ?? 'null', workerId: rc.workerId });
          await rc.onDead(item, stage.name, err, attempt);
          return 'dead';
        }
        rc.metrics?.retried.inc({ pipeline: rc.pipelineName, stage: stage.name });
        const delay = backoffMs(attempt, retry.initialDelayMs, retry.maxDelayMs);
        // Expected on a flaky service: one line without the stack; the final failure is logged in full.
        log.info({ taskStage: stage.name, attempt, delayMs: delay, errorClass: err.name, error: err.message }, 'stage failed; retrying');
        try {
          await sleep(delay, rc.abort);
        } catch {
          return 'aborted';
        }
        attempt++;
      }
    }
  }
  await rc.ledger.write({
    kind: 'result',
    pipeline: rc.pipelineName,
    key,
    output: JSON.stringify(input) ?? 'null',
    attempts: totalAttempts,
    workerId: rc.workerId,
    startedAt: started,
    finishedAt: new Date(),
    durationMs: Math.round(performance.now() - t0),
  });
  return 'done';
}
