// What a worker does with a done task it is asked to recompute (unit tier, fake ledger): which stages it reuses,
// which it runs, what it writes and in which order. The same rules hold against the real database in
// test/e2e/recompute.test.ts; here each one stands alone.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { resolveStage, type PipelineConfig } from '../../src/config/config.js';
import { silentLogger } from '../../src/core/logger.js';
import type { LedgerOp, LedgerWriter } from '../../src/ledger/ledger-writer.js';
import type { StoredMilestone, TaskState } from '../../src/ledger/task-state.js';
import type { SpoolItem } from '../../src/spool/segment.js';
import { buildLimits, runTask, type RunnerContext } from '../../src/worker/run-task.js';

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/** Three stages; each returns what `outputs` says (default: its name), and counts its calls. */
function setup(versions: Record<string, string>, outputs: Record<string, unknown> = {}) {
  const calls: string[] = [];
  const writes: LedgerOp[] = [];
  const stage = (name: string) =>
    resolveStage({
      name,
      version: versions[name],
      run: async () => (calls.push(name), outputs[name] ?? name),
    });
  const pipeline: PipelineConfig = {
    name: 'p',
    topic: 't',
    groupId: 'g',
    partitions: 1,
    source: { table: 's', key: 'id', columns: [] },
    stages: [stage('ner'), stage('lookup'), stage('match')],
  };
  const rc: RunnerContext = {
    pipelineName: 'p',
    pipeline,
    ledger: { write: async (op: LedgerOp) => void writes.push(op) } as unknown as LedgerWriter,
    workerId: 'w',
    log: silentLogger(),
    stopping: new AbortController().signal,
    abort: new AbortController().signal,
    limits: buildLimits(pipeline),
    maxOutputBytes: 1024 * 1024,
    onQuarantined: async () => {},
  };
  return { rc, calls, writes };
}

const stored = (version: string, output: unknown): StoredMilestone => {
  const json = JSON.stringify(output);
  return { output: json, version, hash: md5(json), durationMs: 5 };
};

function doneState(milestones: Record<string, StoredMilestone>, recompute?: string, forced = false): TaskState {
  return {
    inSource: new Set(['k']),
    done: new Set(['k']),
    quarantined: new Set(),
    milestones: new Map([['k', new Map(Object.entries(milestones))]]),
    failures: new Map(),
    recompute: new Map(recompute === undefined ? [] : [['k', { fromStage: recompute, runId: 'run-1', forced }]]),
  };
}

const item: SpoolItem = {
  partition: 0,
  offset: '0',
  task: { v: 1, pipeline: 'p', key: 'k', payload: {}, attempt: 1, runId: 'r', producedAt: '' },
};
const kinds = (writes: LedgerOp[]): string[] =>
  writes.map((w) => ('stage' in w && w.kind !== 'attempt' ? `${w.kind}:${w.stage}` : w.kind));

const v1 = { ner: stored('1', 'ner'), lookup: stored('1', 'lookup'), match: stored('1', 'match') };

describe('a done task', () => {
  it('without a recompute request is skipped, whatever its versions', async () => {
    const { rc, calls } = setup({ lookup: '2' });
    assert.equal(await runTask(item, doneState(v1), rc), 'skipped');
    assert.deepEqual(calls, []);
  });

  it('with one, reruns the stale stage and the later ones; the earlier ones are reused', async () => {
    const { rc, calls, writes } = setup({ lookup: '2' }, { lookup: 'new lookup' });
    assert.equal(await runTask(item, doneState(v1, 'lookup'), rc), 'done');
    assert.deepEqual(calls, ['lookup', 'match']);
    // The later milestone goes first (it followed from the old output), then the replacement, the result, the request.
    assert.deepEqual(kinds(writes), ['unstage:match', 'restage:lookup', 'restage:match', 'result', 'recomputed']);
    const restage = writes[1] as Extract<LedgerOp, { kind: 'restage' }>;
    assert.deepEqual([restage.version, restage.replaced], ['2', '1'], 'replaced only while it still has version 1');
    assert.equal((writes[3] as Extract<LedgerOp, { kind: 'result' }>).replace, true);
    assert.deepEqual(writes[4], { kind: 'recomputed', pipeline: 'p', key: 'k', runId: 'run-1' });
  });

  it('stops where a rerun stage gives the same output: the later stages stay (early cutoff)', async () => {
    const { rc, calls, writes } = setup({ lookup: '2' });
    assert.equal(await runTask(item, doneState(v1, 'lookup'), rc), 'done');
    assert.deepEqual(calls, ['lookup']);
    assert.deepEqual(kinds(writes), ['restage:lookup', 'result', 'recomputed']);
  });

  it('asked from a stage whose version is current reruns it all the same (--from-stage)', async () => {
    const { rc, calls } = setup({});
    await runTask(item, doneState(v1, 'match', true), rc);
    assert.deepEqual(calls, ['match']);
  });

  it('asked again after a crash, with every milestone current, reruns nothing and rewrites the result', async () => {
    const { rc, calls, writes } = setup({ lookup: '2' });
    const current = { ...v1, lookup: stored('2', 'lookup') };
    assert.equal(await runTask(item, doneState(current, 'lookup'), rc), 'done');
    assert.deepEqual(calls, []);
    assert.deepEqual(kinds(writes), ['result', 'recomputed']);
  });

  it('keeps a later stage when one between comes out as before, and writes back what it deleted', async () => {
    const { rc, calls, writes } = setup({ ner: '2' }, { ner: 'new ner' });
    await runTask(item, doneState(v1, 'ner'), rc);
    assert.deepEqual(calls, ['ner', 'lookup'], 'lookup gave its old output: match is not run');
    assert.deepEqual(kinds(writes), [
      'unstage:lookup',
      'unstage:match',
      'restage:ner',
      'restage:lookup',
      'restage:match',
      'result',
      'recomputed',
    ]);
    const back = writes[4] as Extract<LedgerOp, { kind: 'restage' }>;
    assert.deepEqual([back.output, back.version, back.durationMs], ['"match"', '1', 5]);
  });

  it('quarantined, gives up its request', async () => {
    const { rc, calls, writes } = setup({ lookup: '2' });
    const state = doneState(v1, 'lookup');
    state.quarantined.add('k');
    assert.equal(await runTask(item, state, rc), 'skipped');
    assert.deepEqual([calls, kinds(writes)], [[], ['recomputed']]);
  });

  it('missing a stage (added later) runs it and the stages after it', async () => {
    const { rc, calls, writes } = setup({}, { lookup: 'lookup' });
    const { ner, match } = v1;
    await runTask(item, doneState({ ner, match }, 'lookup'), rc);
    assert.deepEqual(calls, ['lookup', 'match']);
    assert.equal((writes.find((w) => w.kind === 'restage') as { replaced: unknown }).replaced, null);
  });
});

describe('a task not done yet', () => {
  it('reruns a stored milestone of another version instead of reusing it', async () => {
    const { rc, calls } = setup({ ner: '2' });
    const state = doneState({ ner: stored('1', 'ner') });
    state.done.clear();
    await runTask(item, state, rc);
    assert.deepEqual(calls, ['ner', 'lookup', 'match']);
  });

  it('reuses a stored milestone of the current version', async () => {
    const { rc, calls, writes } = setup({});
    const state = doneState({ ner: stored('1', 'ner') });
    state.done.clear();
    await runTask(item, state, rc);
    assert.deepEqual(calls, ['lookup', 'match']);
    assert.equal((writes.find((w) => w.kind === 'result') as { replace?: boolean }).replace, false);
  });
});
