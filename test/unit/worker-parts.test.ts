// The worker's parts with fake collaborators: the claim loop (intake and backpressure), the segment runner
// (a segment always leaves the worker: complete, or its unfinished items released), the lease keeper.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pLimit from 'p-limit';
import { SpoolError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import type { LedgerWriter } from '../../src/ledger/ledger-writer.js';
import type { TaskState } from '../../src/ledger/task-state.js';
import type { Claim } from '../../src/spool/claim.js';
import { spoolPaths } from '../../src/spool/layout.js';
import type { SpoolItem } from '../../src/spool/segment.js';
import { ClaimLoop, type SegmentSource } from '../../src/worker/claim-loop.js';
import { LeaseKeeper, type HeldSegment } from '../../src/worker/lease-keeper.js';
import type { RunnerContext, TaskOutcome } from '../../src/worker/run-task.js';
import { SegmentRunner, type WorkCounters } from '../../src/worker/segment-runner.js';
import { fakeClock } from '../helpers/fake-clock.js';

const paths = spoolPaths('/nonexistent-spool', 'p');
const OWN_LEDGER = '0a1b2c3d-0000-4000-8000-000000000001';
const item = (key: number): SpoolItem => ({
  partition: 0,
  offset: String(key),
  task: { v: 1, pipeline: 'p', key, payload: {}, attempt: 1, runId: 'r', producedAt: '' },
});
const claim = (n: number): Claim => ({ segment: `seg-${n}`, file: `seg-${n}~w~0`, expiresAt: 0 });

function fakeSpool(segments: number[][]): SegmentSource & { claimed: string[] } {
  const ready = segments.map((keys, i) => ({ c: claim(i), items: keys.map(item) }));
  const claimed: string[] = [];
  return {
    claimed,
    recoverExpired: async () => 0,
    claim: async () => {
      const next = ready.shift();
      if (next === undefined) return null;
      claimed.push(next.c.segment);
      held.set(next.c.segment, next.items);
      return next.c;
    },
    read: async (c) => held.get(c.segment) ?? [],
  };
}
const held = new Map<string, SpoolItem[]>();

describe('ClaimLoop', () => {
  it(
    'claims every ready segment, hands each to the runner, and stops by ' + 'itself when idle with exitWhenIdle',
    async () => {
      const spool = fakeSpool([[1, 2], [3], [4, 5, 6]]);
      const ran: number[][] = [];
      const loop = new ClaimLoop({
        claimer: spool,
        run: async (h) => void ran.push(h.items.map((i) => Number(i.task.key))),
        waiting: () => 0,
        spoolItems: async () => 0,
        paths,
        pollMs: 10,
        exitWhenIdle: true,
        log: silentLogger(),
        onFatal: () => assert.fail('no fatal error'),
        clock: fakeClock(),
      });
      await loop.run();
      assert.deepEqual(ran, [[1, 2], [3], [4, 5, 6]]);
      assert.equal(loop.state, 'stopped');
    },
  );

  it('claims nothing while tasks wait for a worker slot (backpressure is a wait)', async () => {
    const spool = fakeSpool([[1], [2]]);
    let waiting = 5;
    const clock = fakeClock();
    const loop = new ClaimLoop({
      claimer: spool,
      run: async () => {},
      waiting: () => waiting,
      spoolItems: async () => 0,
      paths,
      pollMs: 10,
      exitWhenIdle: true,
      log: silentLogger(),
      onFatal: () => {},
      clock: {
        ...clock,
        sleep: async (ms) => {
          clock.sleeps.push(ms);
          if (clock.sleeps.length === 3) waiting = 0;
        },
      },
    });
    await loop.run();
    assert.deepEqual(clock.sleeps.slice(0, 3), [10, 10, 10], 'three slot waits before the first claim');
    assert.deepEqual(spool.claimed, ['seg-0', 'seg-1']);
  });

  it(
    'fails when a segment hits an unusable spool: onFatal fires, no more ' + 'claims, run rejects with the error',
    async () => {
      const spool = fakeSpool([[1], [2], [3]]);
      const fatal = new SpoolError('SPOOL_UNUSABLE', 'spool.dir: cannot use it');
      let told: unknown = null;
      const loop = new ClaimLoop({
        claimer: spool,
        run: async () => {
          throw fatal;
        },
        waiting: () => 0,
        spoolItems: async () => 1,
        paths,
        pollMs: 10,
        exitWhenIdle: false,
        log: silentLogger(),
        onFatal: (e) => (told = e),
        clock: fakeClock(),
      });
      await assert.rejects(loop.run(), fatal);
      assert.equal(told, fatal);
      assert.equal(loop.state, 'failed');
      assert.ok(spool.claimed.length < 3, `stopped claiming after the failure (claimed ${spool.claimed.length})`);
    },
  );

  it('drain() stops intake: nothing is claimed after it', async () => {
    const spool = fakeSpool([[1], [2]]);
    const loop = new ClaimLoop({
      claimer: spool,
      run: async () => {},
      waiting: () => 0,
      spoolItems: async () => 2,
      paths,
      pollMs: 10,
      exitWhenIdle: false,
      log: silentLogger(),
      onFatal: () => {},
      clock: fakeClock(),
    });
    loop.drain();
    await loop.run();
    assert.deepEqual(spool.claimed, []);
  });
});

function runnerFor(opts: {
  outcome?: (key: number) => TaskOutcome;
  readState?: () => Promise<TaskState>;
  stop?: AbortController;
}) {
  const completed: string[] = [];
  const released: Array<{ segment: string; keys: number[] }> = [];
  const stats: WorkCounters = {
    done: 0,
    quarantined: 0,
    skipped: 0,
    rejected: 0,
    returned: 0,
    segments: 0,
    inFlight: 0,
    seconds: 0,
  };
  const rejected: number[] = [];
  const reasons: string[] = [];
  const ran: number[] = [];
  const stopping = opts.stop ?? new AbortController();
  const rc = {
    pipelineName: 'p',
    log: silentLogger(),
    stopping: stopping.signal,
    abort: new AbortController().signal,
    ledger: { flush: async () => {} } as unknown as LedgerWriter,
  } as RunnerContext;
  const state = (keys: number[]): TaskState =>
    ({
      inSource: new Set(keys.map(String)),
      done: new Set(),
      quarantined: new Set(),
      milestones: new Map(),
      failures: new Map(),
      recompute: new Map(),
    }) as unknown as TaskState;
  const clock = fakeClock();
  const runner = new SegmentRunner({
    rc,
    slots: pLimit(4),
    claimer: {
      complete: async (c) => void completed.push(c.segment),
      release: async (c, items) =>
        void released.push({ segment: c.segment, keys: items.map((i) => Number(i.task.key)) }),
    },
    leases: new LeaseKeeper({ renew: async () => true }, 60_000, silentLogger()),
    paths,
    databaseUrl: 'mysql://root@127.0.0.1:3306/x',
    readState: opts.readState ?? (async () => state([1, 2, 3, 4])),
    reject: async (items, reason) => {
      rejected.push(...items.map((i) => Number(i.task.key)));
      reasons.push(reason);
    },
    ledger: OWN_LEDGER,
    stats,
    runTask: async (i) => {
      ran.push(Number(i.task.key));
      return (opts.outcome ?? (() => 'done'))(Number(i.task.key));
    },
    clock,
  });
  const seg = (keys: number[]): HeldSegment => ({
    claim: claim(keys[0]!),
    items: keys.map(item),
    settled: new Set(),
    lost: false,
  });
  return { runner, completed, released, stats, rejected, reasons, ran, seg, state, clock };
}

describe('SegmentRunner', () => {
  it('completes a segment whose tasks all finished, counting each outcome', async () => {
    const r = runnerFor({ outcome: (k) => (k === 2 ? 'quarantined' : k === 3 ? 'skipped' : 'done') });
    await r.runner.run(r.seg([1, 2, 3]));
    assert.deepEqual(r.completed, ['seg-1']);
    assert.deepEqual([r.stats.done, r.stats.quarantined, r.stats.skipped, r.stats.segments], [1, 1, 1, 1]);
  });

  it(
    'releases the unfinished items of a segment (aborted tasks, and a task ' + 'that threw) back to the spool',
    async () => {
      const r = runnerFor({
        outcome: (k) => {
          if (k === 3) throw new Error('bug in the runner');
          return k === 2 ? 'aborted' : 'done';
        },
      });
      await r.runner.run(r.seg([1, 2, 3, 4]));
      assert.deepEqual(r.completed, []);
      assert.deepEqual(r.released, [{ segment: 'seg-1', keys: [2, 3] }]);
      assert.equal(r.stats.returned, 2);
    },
  );

  it('rejects keys without a source row as bad messages instead of running them', async () => {
    const r = runnerFor({ outcome: () => 'done' });
    await r.runner.run(r.seg([1, 9, 2]));
    assert.deepEqual(r.rejected, [9]);
    assert.deepEqual([r.stats.rejected, r.stats.done], [1, 2]);
    assert.deepEqual(r.completed, ['seg-1']);
  });

  it(
    'never runs a task of another ledger, even when its key is in this ' + "source: it is a bad message 'other-ledger'",
    async () => {
      const r = runnerFor({ outcome: () => 'done' });
      const seg = r.seg([1, 2, 3]);
      seg.items[1]!.task.ledger = '0a1b2c3d-0000-4000-8000-0000000000ff';
      seg.items[2]!.task.ledger = OWN_LEDGER;
      await r.runner.run(seg);
      assert.deepEqual(r.rejected, [2]);
      assert.deepEqual(r.reasons, ['other-ledger']);
      assert.deepEqual(r.ran.sort(), [1, 3], 'a task without a ledger (an older producer) and one of this ledger run');
      assert.deepEqual(r.completed, ['seg-1']);
    },
  );

  it('waits out a database outage while reading task state, then runs the segment', async () => {
    let reads = 0;
    const r = runnerFor({
      readState: async () => {
        if (++reads < 3) throw Object.assign(new Error('gone'), { code: 'PROTOCOL_CONNECTION_LOST' });
        return r.state([1, 2]);
      },
    });
    await r.runner.run(r.seg([1, 2]));
    assert.equal(reads, 3);
    assert.deepEqual(r.clock.sleeps, [400, 800]);
    assert.deepEqual(r.completed, ['seg-1']);
  });

  it('gives the whole segment back untouched when stopped during an outage', async () => {
    const stop = new AbortController();
    const r = runnerFor({
      stop,
      readState: async () => {
        stop.abort();
        throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
      },
    });
    await r.runner.run(r.seg([1, 2]));
    assert.deepEqual(r.released, [{ segment: 'seg-1', keys: [1, 2] }]);
  });

  it('hands back nothing of a segment whose lease was lost (another worker has it)', async () => {
    const r = runnerFor({ outcome: () => 'done' });
    const h = r.seg([1, 2]);
    h.lost = true;
    await r.runner.run(h);
    assert.deepEqual([r.completed, r.released, r.stats.done], [[], [], 0]);
  });
});

describe('LeaseKeeper', () => {
  it('marks a segment lost when its renewal finds it taken back, and survives a renewal that throws', async () => {
    const answers = new Map<string, () => Promise<boolean>>([
      ['seg-1', async () => false],
      [
        'seg-2',
        async () => {
          throw new Error('EIO');
        },
      ],
      ['seg-3', async () => true],
    ]);
    const keeper = new LeaseKeeper({ renew: (c) => answers.get(c.segment)!() }, 60_000, silentLogger());
    const hs = [1, 2, 3].map((n): HeldSegment => ({ claim: claim(n), items: [], settled: new Set(), lost: false }));
    for (const h of hs) keeper.add(h);
    await keeper.renewAll();
    keeper.close();
    assert.deepEqual(
      hs.map((h) => h.lost),
      [true, false, false],
    );
    assert.equal(keeper.state, 'closed');
  });
});

describe('KeyGate', () => {
  it(
    'skips a copy of a key finished here, but runs a quarantined key again ' +
      'when a newer snapshot says it was requeued',
    async () => {
      const { KeyGate } = await import('../../src/worker/key-gate.js');
      const gate = new KeyGate();
      let runs = 0;
      const run = (outcome: TaskOutcome) => async (): Promise<TaskOutcome> => (runs++, outcome);
      const before = performance.now();
      assert.equal(await gate.run('a', run('done')), 'done');
      assert.equal(
        await gate.run('a', run('done'), { at: performance.now() + 1, quarantined: false }),
        'skipped',
        'done stays done',
      );
      assert.equal(await gate.run('b', run('quarantined')), 'quarantined');
      assert.equal(
        await gate.run('b', run('quarantined'), { at: before, quarantined: false }),
        'skipped',
        'a snapshot older than the quarantine proves nothing',
      );
      assert.equal(
        await gate.run('b', run('quarantined'), { at: performance.now() + 1, quarantined: true }),
        'skipped',
        'still quarantined',
      );
      assert.equal(
        await gate.run('b', run('done'), { at: performance.now() + 1, quarantined: false }),
        'done',
        'requeued: runs again',
      );
      assert.equal(runs, 3);
    },
  );

  it('remembers a bounded window of finished keys: the oldest are forgotten first', async () => {
    const { KeyGate } = await import('../../src/worker/key-gate.js');
    const gate = new KeyGate(3);
    for (const k of ['a', 'b', 'c', 'd']) await gate.run(k, async () => 'done');
    assert.equal(gate.remembered, 3);
    assert.equal(await gate.run('d', async () => 'done'), 'skipped');
    assert.equal(
      await gate.run('a', async () => 'done'),
      'done',
      "'a' was forgotten: its copy runs (the ledger's done check is the guarantee)",
    );
  });

  it(
    'a key that finished again is remembered from its last finish, and the ' +
      'window holds exactly the last `remember` keys',
    async () => {
      const { KeyGate } = await import('../../src/worker/key-gate.js');
      const gate = new KeyGate(3);
      await gate.run('a', async () => 'quarantined');
      await gate.run('b', async () => 'done');
      assert.equal(
        await gate.run('a', async () => 'done', { at: performance.now() + 1, quarantined: false }),
        'done',
        'requeued',
      );
      await gate.run('c', async () => 'done');
      assert.equal(gate.remembered, 3, "the slot of a's first finish is reused without forgetting a");
      assert.equal(await gate.run('a', async () => 'done'), 'skipped');
      await gate.run('d', async () => 'done');
      assert.equal(await gate.run('b', async () => 'done'), 'done', 'b was the oldest');
      const big = new KeyGate(1000);
      for (let i = 0; i < 5000; i++) await big.run(`k${i}`, async () => 'done');
      assert.equal(big.remembered, 1000);
      assert.equal(await big.run('k4000', async () => 'done'), 'skipped');
      assert.equal(await big.run('k3999', async () => 'done'), 'done');
    },
  );
});

describe('tasks in flight in one worker', () => {
  it(
    'is the configured number, else 256, else twice the widest stage so that ' +
      'tasks waiting on the ledger never starve it',
    async () => {
      const { inFlightLimit } = await import('../../src/worker/worker.js');
      const { resolveStage } = await import('../../src/config/config.js');
      const stage = (concurrency?: number) =>
        resolveStage({ name: 's', run: () => null, ...(concurrency === undefined ? {} : { concurrency }) });
      assert.equal(inFlightLimit(64, [stage(512)]), 64);
      assert.equal(inFlightLimit(undefined, [stage(64), stage()]), 256);
      assert.equal(inFlightLimit(undefined, [stage(16), stage(256)]), 512);
      assert.equal(inFlightLimit(undefined, []), 256);
    },
  );
});
