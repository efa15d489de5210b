// runTask with a fake ledger (unit tier): recording is not the stage. A write the database refuses
// quarantines the task with that reason; it is never counted as a failure of the stage, never retried,
// and never sent back to the spool to run again.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveStage, type PipelineConfig } from '../../src/config/config.js';
import { silentLogger } from '../../src/core/logger.js';
import {
  LedgerClosedError,
  LedgerWriteError,
  type LedgerOp,
  type LedgerWriter,
} from '../../src/ledger/ledger-writer.js';
import type { TaskState } from '../../src/ledger/task-state.js';
import type { SpoolItem } from '../../src/spool/segment.js';
import { buildLimits, runTask, type RunnerContext } from '../../src/worker/run-task.js';

function context(refuse: (op: LedgerOp) => Error | null): {
  rc: RunnerContext;
  writes: LedgerOp[];
  runs: () => number;
  quarantined: string[];
} {
  let runs = 0;
  const writes: LedgerOp[] = [];
  const quarantined: string[] = [];
  const pipeline: PipelineConfig = {
    name: 'p',
    topic: 't',
    groupId: 'g',
    partitions: 1,
    source: { table: 's', key: 'id', columns: [] },
    stages: [
      resolveStage({
        name: 'only',
        retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 1 },
        run: async () => ++runs,
      }),
    ],
  };
  const ledger = {
    write: async (op: LedgerOp) => {
      const err = refuse(op);
      if (err !== null) throw err;
      writes.push(op);
    },
  } as unknown as LedgerWriter;
  const rc: RunnerContext = {
    pipelineName: 'p',
    pipeline,
    ledger,
    workerId: 'w',
    log: silentLogger(),
    stopping: new AbortController().signal,
    abort: new AbortController().signal,
    limits: buildLimits(pipeline),
    maxOutputBytes: 1024 * 1024,
    onQuarantined: async (item) => void quarantined.push(String(item.task.key)),
  };
  return { rc, writes, runs: () => runs, quarantined };
}

const item: SpoolItem = {
  partition: 0,
  offset: '0',
  task: { v: 1, pipeline: 'p', key: 'k', payload: {}, attempt: 1, runId: 'r', producedAt: '' },
};
const state = (): TaskState => ({
  inSource: new Set(['k']),
  done: new Set(),
  quarantined: new Set(),
  milestones: new Map(),
  failures: new Map(),
  recompute: new Map(),
});

describe('runTask when the ledger refuses a write', () => {
  it('a refused milestone quarantines the task: the stage ran once and no failure of it is recorded', async () => {
    const c = context((op) =>
      op.kind === 'milestone' ? new LedgerWriteError('milestone', new Error('Data too long')) : null,
    );
    // A stage after it: the milestone of a stage that is not the last is what the next ones start from.
    c.rc.pipeline = {
      ...c.rc.pipeline,
      stages: [...c.rc.pipeline.stages, resolveStage({ name: 'next', run: async (n: unknown) => n })],
    };
    c.rc.limits = buildLimits(c.rc.pipeline);
    assert.equal(await runTask(item, state(), c.rc), 'quarantined');
    assert.equal(c.runs(), 1);
    assert.deepEqual(
      c.writes.map((w) => w.kind),
      ['quarantined'],
    );
    const dead = c.writes[0] as Extract<LedgerOp, { kind: 'quarantined' }>;
    assert.equal(dead.errorClass, 'LedgerWriteError');
    assert.match(dead.errorMessage, /refused the milestone row: Data too long/);
    assert.deepEqual(c.quarantined, ['k']);
  });

  it("the last stage's milestone goes with the result: a refused one does not undo a written result", async () => {
    const c = context((op) =>
      op.kind === 'milestone' ? new LedgerWriteError('milestone', new Error('Data too long')) : null,
    );
    assert.equal(await runTask(item, state(), c.rc), 'done');
    assert.deepEqual(
      c.writes.map((w) => w.kind),
      ['result'],
    );
    const refusedBoth = context((op) =>
      op.kind === 'milestone' || op.kind === 'result'
        ? new LedgerWriteError(op.kind, new Error('Data too long'))
        : null,
    );
    assert.equal(await runTask(item, state(), refusedBoth.rc), 'quarantined', 'the result decides');
    assert.match(
      (refusedBoth.writes[0] as Extract<LedgerOp, { kind: 'quarantined' }>).errorMessage,
      /refused the result row/,
    );
  });

  it('a refused quarantine row is written again without the payload: what can be saved is saved', async () => {
    let deadTries = 0;
    const c = context((op) =>
      op.kind === 'result'
        ? new LedgerWriteError('result', new Error('no'))
        : op.kind === 'quarantined' && ++deadTries === 1
          ? new LedgerWriteError('quarantined', new Error('payload'))
          : null,
    );
    assert.equal(await runTask(item, state(), c.rc), 'quarantined');
    const dead = c.writes.filter((w): w is Extract<LedgerOp, { kind: 'quarantined' }> => w.kind === 'quarantined');
    assert.equal(dead.length, 1);
    assert.equal(dead[0]!.payload, null);
  });

  it('a writer closed during a database outage gives the task back to the spool (the worker is stopping)', async () => {
    const c = context(() => new LedgerClosedError(new Error('gone')));
    assert.equal(await runTask(item, state(), c.rc), 'aborted');
    assert.deepEqual(c.quarantined, []);
  });
});

describe('what a stage call receives', () => {
  it(
    'the task, the attempt, the signal; its logger and a copy of the earlier ' +
      'outputs only when the stage reads them',
    async () => {
      const c = context(() => null);
      let children = 0;
      const counting = (log: ReturnType<typeof silentLogger>): ReturnType<typeof silentLogger> =>
        new Proxy(log, {
          get: (target, prop, receiver) =>
            prop === 'child'
              ? (b: object) => (children++, counting(target.child(b)))
              : (Reflect.get(target, prop, receiver) as unknown),
        });
      c.rc.log = counting(silentLogger());
      const seen: Array<Record<string, unknown>> = [];
      c.rc.pipeline = {
        ...c.rc.pipeline,
        stages: [
          {
            name: 'quiet',
            run: async (_in: unknown, ctx: { task: unknown; attempt: number; signal: AbortSignal }) => (
              seen.push({ task: ctx.task, attempt: ctx.attempt, aborted: ctx.signal.aborted }),
              1
            ),
          },
          {
            name: 'reads',
            run: async (
              _in: unknown,
              ctx: { outputs: Record<string, unknown>; log: { info: (m: string) => void } },
            ) => (ctx.log.info('x'), ctx.outputs.quiet),
          },
        ].map(resolveStage),
      };
      c.rc.limits = buildLimits(c.rc.pipeline);
      assert.equal(await runTask(item, state(), c.rc), 'done');
      assert.deepEqual(seen, [{ task: { key: 'k', payload: {}, attempt: 1 }, attempt: 1, aborted: false }]);
      assert.equal(
        children,
        2,
        "one child logger for the task's key and one for the stage that logged, none for the quiet stage",
      );
      const result = c.writes.find((w) => w.kind === 'result') as Extract<LedgerOp, { kind: 'result' }>;
      assert.equal(result.output, '1', "the second stage read the first one's output");
    },
  );
});

describe("a stage's timeout and signal", () => {
  it(
    'a stage past its timeout is abandoned with StageTimeoutError and its ' +
      'signal fires; a sync throw and an abort end the call too',
    async () => {
      const c = context(() => null);
      let signalSeen: AbortSignal | undefined;
      const stages = (run: (input: unknown, ctx: { signal: AbortSignal }) => unknown) =>
        [{ name: 'slow', timeoutMs: 30, retry: { maxAttempts: 1 }, run }].map(resolveStage);
      c.rc.pipeline = {
        ...c.rc.pipeline,
        stages: stages((_i, ctx) => ((signalSeen = ctx.signal), new Promise(() => {}))),
      };
      c.rc.limits = buildLimits(c.rc.pipeline);
      const t0 = performance.now();
      assert.equal(await runTask(item, state(), c.rc), 'quarantined');
      assert.ok(performance.now() - t0 < 5000, 'abandoned, not awaited');
      assert.equal(signalSeen?.aborted, true);
      assert.equal((signalSeen?.reason as Error | undefined)?.name, 'StageTimeoutError');
      const dead = c.writes.find((w) => w.kind === 'quarantined') as Extract<LedgerOp, { kind: 'quarantined' }>;
      assert.match(dead.errorMessage, /stage slow timed out after 30 ms/);

      const sync = context(() => null);
      sync.rc.pipeline = {
        ...sync.rc.pipeline,
        stages: stages(() => {
          throw new TypeError('a bug before the first await');
        }),
      };
      sync.rc.limits = buildLimits(sync.rc.pipeline);
      assert.equal(await runTask(item, state(), sync.rc), 'quarantined');
      assert.match(
        (sync.writes.find((w) => w.kind === 'quarantined') as Extract<LedgerOp, { kind: 'quarantined' }>).errorMessage,
        /a bug before the first await/,
      );

      const stop = new AbortController();
      const aborted = context(() => null);
      aborted.rc.abort = stop.signal;
      aborted.rc.pipeline = {
        ...aborted.rc.pipeline,
        stages: [
          resolveStage({
            name: 'slow',
            timeoutMs: 60_000,
            run: (_i: unknown, ctx: { signal: AbortSignal }) => (
              (signalSeen = ctx.signal),
              setTimeout(() => stop.abort(new Error('forced stop')), 10),
              new Promise(() => {})
            ),
          }),
        ],
      };
      aborted.rc.limits = buildLimits(aborted.rc.pipeline);
      assert.equal(await runTask(item, state(), aborted.rc), 'aborted', 'a forced stop gives the task back');
      assert.equal(signalSeen?.aborted, true);

      // A stage that passes on a copy of its context: the copy has the real signal, and a stop still reaches it.
      const stop2 = new AbortController();
      const copied = context(() => null);
      copied.rc.abort = stop2.signal;
      let copy: { signal?: AbortSignal; log?: unknown; outputs?: unknown; extra?: number } = {};
      copied.rc.pipeline = {
        ...copied.rc.pipeline,
        stages: [
          resolveStage({
            name: 'slow',
            timeoutMs: 60_000,
            run: (_i: unknown, ctx: object) => (
              (copy = { ...ctx, extra: 1 }),
              setTimeout(() => stop2.abort(new Error('forced stop')), 10),
              new Promise(() => {})
            ),
          }),
        ],
      };
      copied.rc.limits = buildLimits(copied.rc.pipeline);
      assert.equal(await runTask(item, state(), copied.rc), 'aborted');
      assert.equal(copy.signal?.aborted, true, '{ ...ctx } carries the signal');
      assert.ok(copy.log !== undefined && copy.outputs !== undefined);
    },
  );
});
