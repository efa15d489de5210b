// runTask with a fake ledger (unit tier): recording is not the stage. A write the database refuses
// quarantines the task with that reason; it is never counted as a failure of the stage, never retried,
// and never sent back to the spool to run again.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PipelineConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { LedgerClosedError, LedgerWriteError, type LedgerOp, type LedgerWriter } from '../../src/db/ledger.js';
import type { TaskState } from '../../src/db/task-state.js';
import type { SpoolItem } from '../../src/spool/segment.js';
import { buildLimits, runTask, type RunnerContext } from '../../src/worker/run-task.js';

function context(refuse: (op: LedgerOp) => Error | null): { rc: RunnerContext; writes: LedgerOp[]; runs: () => number; quarantined: string[] } {
  let runs = 0;
  const writes: LedgerOp[] = [];
  const quarantined: string[] = [];
  const pipeline: PipelineConfig = {
    topic: 't',
    partitions: 1,
    source: { table: 's', key: 'id', columns: [] },
    stages: [{ name: 'only', retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 1 }, run: async () => ++runs }],
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
    onDead: async (item) => void quarantined.push(String(item.task.key)),
  };
  return { rc, writes, runs: () => runs, quarantined };
}

const item: SpoolItem = { partition: 0, offset: '0', task: { v: 1, pipeline: 'p', key: 'k', payload: {}, attempt: 1, runId: 'r', producedAt: '' } };
const state = (): TaskState => ({ inSource: new Set(['k']), done: new Set(), dead: new Set(), milestones: new Map(), failures: new Map() });

describe('runTask when the ledger refuses a write', () => {
  it('a refused milestone quarantines the task: the stage ran once and no failure of it is recorded', async () => {
    const c = context((op) => (op.kind === 'milestone' ? new LedgerWriteError('milestone', new Error('Data too long')) : null));
    assert.equal(await runTask(item, state(), c.rc), 'dead');
    assert.equal(c.runs(), 1);
    assert.deepEqual(c.writes.map((w) => w.kind), ['dead']);
    const dead = c.writes[0] as Extract<LedgerOp, { kind: 'dead' }>;
    assert.equal(dead.errorClass, 'LedgerWriteError');
    assert.match(dead.errorMessage, /refused the milestone row: Data too long/);
    assert.deepEqual(c.quarantined, ['k']);
  });

  it('a refused quarantine row is written again without the payload: what can be saved is saved', async () => {
    let deadTries = 0;
    const c = context((op) => (op.kind === 'result' ? new LedgerWriteError('result', new Error('no')) : op.kind === 'dead' && ++deadTries === 1 ? new LedgerWriteError('dead', new Error('payload')) : null));
    assert.equal(await runTask(item, state(), c.rc), 'dead');
    const dead = c.writes.filter((w) => w.kind === 'dead') as Array<Extract<LedgerOp, { kind: 'dead' }>>;
    assert.equal(dead.length, 1);
    assert.equal(dead[0]!.payload, null);
  });

  it('a writer closed during a database outage gives the task back to the spool (the worker is stopping)', async () => {
    const c = context((op) => (op.kind === 'milestone' ? new LedgerClosedError(new Error('gone')) : null));
    assert.equal(await runTask(item, state(), c.rc), 'aborted');
    assert.deepEqual(c.quarantined, []);
  });
});
