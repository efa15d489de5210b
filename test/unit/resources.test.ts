// The pure parts of fleet-wide limits: fair shares by demand, a process's gate (its share, its lease, its
// rate), the adaptive limit's controller, and what counts as overload.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, SluiceError } from '../../src/core/errors.js';
import { initialState, nextLimit, PROBE_EVERY_MS, type ControllerState } from '../../src/resources/controller.js';
import { fairShares } from '../../src/resources/fair-share.js';
import { ResourceGate } from '../../src/resources/gate.js';
import { leaseFits, leaseForTimeout, leaseMargin, RENEW_MS } from '../../src/config/lease-time.js';
import { defaults, mergeLayers } from '../../src/config/config.js';
import { validateConfig } from '../../src/config/validate.js';
import { isOverload, OverloadError } from '../../src/resources/overload.js';
import { fakeClock } from '../helpers/fake-clock.js';
import { seq } from '../helpers/regex.js';

const sum = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);

describe('fairShares', () => {
  it('gives each what it asks when the limit allows, and splits the rest evenly among the busier ones', () => {
    assert.deepEqual(
      Object.fromEntries(
        fairShares(
          8,
          new Map([
            ['a', 1],
            ['b', 10],
            ['c', 10],
          ]),
          true,
        ),
      ),
      { a: 1, b: 4, c: 3 },
    );
    assert.deepEqual(
      Object.fromEntries(
        fairShares(
          8,
          new Map([
            ['a', 2],
            ['b', 3],
          ]),
          true,
        ),
      ),
      { a: 2, b: 3 },
    );
    assert.deepEqual(
      Object.fromEntries(
        fairShares(
          8,
          new Map([
            ['a', 0],
            ['b', 100],
          ]),
          true,
        ),
      ),
      { a: 0, b: 8 },
    );
  });

  it('never hands out more than the limit, whatever the demands (whole units)', () => {
    for (let i = 0; i < 200; i++) {
      const limit = 1 + Math.floor(Math.random() * 40);
      const demands = new Map(
        Array.from({ length: 1 + Math.floor(Math.random() * 7) }, (_, j): [string, number] => [
          `p${j}`,
          Math.floor(Math.random() * 30),
        ]),
      );
      const shares = fairShares(limit, demands, true);
      assert.ok(sum(shares) <= limit, `${sum(shares)} > ${limit}`);
      for (const [id, d] of demands) assert.ok(shares.get(id)! <= Math.max(d, 0));
    }
  });
});

describe('ResourceGate', () => {
  const grant = (clock: { now(): number }, concurrency: number, leaseMs = 10_000) => ({
    concurrency,
    rate: Infinity,
    burst: 0,
    leaseEnd: clock.now() + leaseMs,
  });

  it('lets at most its share of calls run at once; the others wait in order', async () => {
    const clock = fakeClock();
    const gate = new ResourceGate('r', clock);
    gate.apply(grant(clock, 2));
    const order: number[] = [];
    const done = await Promise.all([gate.acquire(100), gate.acquire(100)]);
    const third = gate.acquire(100).then((d) => (order.push(3), d));
    const fourth = gate.acquire(100).then((d) => (order.push(4), d));
    await Promise.resolve();
    assert.equal(gate.inFlight, 2);
    assert.equal(gate.demand, 4);
    done[0]({ ok: true, overload: false, latencyMs: 5 });
    (await third)({ ok: true, overload: false, latencyMs: 5 });
    done[1]({ ok: false, overload: true, latencyMs: 9 });
    (await fourth)({ ok: true, overload: false, latencyMs: 7 });
    assert.deepEqual(order, [3, 4]);
    assert.deepEqual(gate.takeSamples(), { calls: 4, ok: 3, overloads: 1, latencySumMs: 17, latencyMinMs: 5 });
  });

  it('starts no call that would outlast its lease, and none at all without one', async () => {
    const clock = fakeClock();
    const gate = new ResourceGate('r', clock);
    const ctl = new AbortController();
    const waiting = gate.acquire(100, ctl.signal);
    gate.apply(grant(clock, 5, 1000));
    (await waiting)({ ok: true, overload: false, latencyMs: 1 });
    clock.advance(950);
    const late = gate.acquire(100, ctl.signal);
    let started = false;
    void late.then(
      () => (started = true),
      () => {},
    );
    await new Promise((r) => setImmediate(r));
    assert.equal(started, false, 'a 100 ms call 50 ms before the lease ends waits for a renewal');
    gate.apply(grant(clock, 5, 1000));
    await late;
    assert.equal(started, true);
  });

  it(
    'lowered, starts nothing above the new limit but holds its calls in ' +
      'flight until they end; gives up waiting when the signal fires',
    async () => {
      const clock = fakeClock();
      const gate = new ResourceGate('r', clock);
      gate.apply(grant(clock, 4));
      const first = await gate.acquire(10);
      await gate.acquire(10);
      gate.lowerTo(1);
      assert.equal(gate.grant.concurrency, 1);
      assert.equal(gate.held, 2, 'what it must still report: its calls in flight');
      first({ ok: true, overload: false, latencyMs: 1 });
      assert.equal(gate.held, 1);
      const blocked = gate.acquire(10);
      let started = false;
      void blocked.then(
        () => (started = true),
        () => {},
      );
      await new Promise((r) => setImmediate(r));
      assert.equal(started, false, 'one call in flight is the new limit');
      gate.close();
      await blocked.catch(() => {});
      const gate2 = new ResourceGate('r2', clock);
      gate2.apply(grant(clock, 4));
      await gate2.acquire(10);
      await gate2.acquire(10);
      gate2.lowerTo(2);
      const ctl = new AbortController();
      const w = gate2.acquire(10, ctl.signal);
      ctl.abort(new Error('stopping'));
      await assert.rejects(w, /stopping/);
      assert.equal(gate2.demand, 2);
    },
  );

  it('spaces calls by its rate share, with its part of the burst', async () => {
    const gate = new ResourceGate('r');
    gate.apply({ concurrency: Infinity, rate: 50, burst: 5, leaseEnd: performance.now() + 60_000 });
    await new Promise((r) => setTimeout(r, 150));
    const t0 = performance.now();
    const starts: number[] = [];
    await Promise.all(
      Array.from({ length: 15 }, () =>
        gate
          .acquire(10)
          .then((d) => (starts.push(performance.now() - t0), d({ ok: true, overload: false, latencyMs: 1 }))),
      ),
    );
    assert.ok(
      starts.filter((s) => s < 20).length <= 5,
      `at most the burst at once: ${starts.map(Math.round).join(',')}`,
    );
    assert.ok(
      starts.at(-1)! >= 150,
      `10 calls past the burst take about 200 ms at 50/s, took ${Math.round(starts.at(-1)!)} ms`,
    );
    gate.close();
  });
});

describe('lease length', () => {
  it(
    'lets a call of any stage timeout start right after a renewal, with the ' +
      'default lease (the default 60 s timeout included)',
    async () => {
      for (const timeoutMs of [100, 2000, 5000, 27_000, 60_000, 600_000]) {
        const clock = fakeClock();
        const gate = new ResourceGate('r', clock);
        const lease = leaseForTimeout(timeoutMs);
        // As the coordinator applies a renewal: the lease less its margin, on this process's clock.
        gate.apply({ concurrency: 1, rate: Infinity, burst: 0, leaseEnd: clock.now() + lease - leaseMargin(lease) });
        clock.advance(RENEW_MS);
        let started = false;
        void gate.acquire(timeoutMs).then(() => (started = true));
        await Promise.resolve();
        assert.ok(started, `timeout ${timeoutMs} ms, lease ${lease} ms: no call started`);
        assert.ok(leaseFits(lease, timeoutMs));
      }
    },
  );

  it('is refused in the config when it leaves no room for the stage timeout, with the length that would', () => {
    const run = async (): Promise<null> => null;
    const config = (leaseMs: number) =>
      mergeLayers(structuredClone(defaults), {
        resources: { gpu: { concurrency: 2, leaseMs } },
        pipelines: {
          p: {
            topic: 't',
            source: { table: 's', key: 'id', columns: [] },
            stages: [{ name: 'ner', resource: 'gpu', timeoutMs: 60_000, run }],
          },
        },
      });
    assert.throws(
      () => validateConfig(config(63_000)),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(
          e.message,
          seq(
            /resources\.gpu\.leaseMs: 63000 ms leaves no room for pipelines\.p\.stages\[0\] /,
            /\(timeoutMs 60000\).*at least \d+/,
          ),
        );
        return true;
      },
    );
    assert.doesNotThrow(() => validateConfig(config(leaseForTimeout(60_000))));
  });
});

describe('adaptive limit (controller)', () => {
  const bounds = { min: 1, max: 64 };
  const window = (latencyMs: number, overloads = 0, calls = 200) => ({
    calls,
    ok: calls - overloads,
    overloads,
    latencyMs,
    demand: 1000,
  });

  it('starts at min and doubles while latency stays at its baseline', () => {
    let s = initialState(1, 0);
    const seen: number[] = [];
    for (let t = 1; t <= 5; t++) seen.push((s = nextLimit(s, window(20), bounds, t * 1000)).limit);
    assert.deepEqual(seen, [2, 4, 8, 16, 32]);
  });

  it('settles where latency grows past the tolerance, and cuts multiplicatively on overload', () => {
    // A service with 8 slots: beyond 8 calls, latency grows in proportion (they queue).
    const latency = (limit: number): number => 20 * Math.max(1, limit / 8);
    let s: ControllerState = initialState(1, 0);
    for (let t = 1; t <= 25; t++) s = nextLimit(s, window(latency(s.limit)), bounds, t * 1000);
    assert.ok(s.limit >= 8 && s.limit <= 20, `settled near the slots (8) with a short queue, at ${s.limit}`);
    const cut = nextLimit(s, window(latency(s.limit), 20), bounds, 26_000);
    assert.equal(cut.limit, Math.floor(s.limit * 0.7));
  });

  it('ignores a stray reset (below 1% of the window) and an idle window', () => {
    const s = { ...initialState(1, 0), limit: 10, slowStart: false, baselineMs: 20 };
    assert.equal(nextLimit(s, window(20, 1, 200), bounds, 1000).limit >= 10, true);
    assert.equal(nextLimit(s, { calls: 0, ok: 0, overloads: 0, latencyMs: null, demand: 0 }, bounds, 1000), s);
  });

  it(
    'at its least limit, takes the latency it sees at the probe time as the ' +
      'baseline (a stale baseline cannot hold it down)',
    () => {
      const stuck = { ...initialState(1, 0), limit: 1, slowStart: false, baselineMs: 20, nextProbeAt: PROBE_EVERY_MS };
      assert.equal(nextLimit(stuck, window(60), bounds, 1000).limit, 1, 'latency 3x a stale baseline keeps it at 1...');
      const reprobed = nextLimit(stuck, window(60), bounds, PROBE_EVERY_MS);
      assert.equal(reprobed.baselineMs, 60);
      assert.ok(
        nextLimit(reprobed, window(60), bounds, PROBE_EVERY_MS + 1000).limit > 1,
        '...until the probe time resets it',
      );
    },
  );

  it('re-measures the no-load latency every probe period at half the limit, then goes back', () => {
    const s = { ...initialState(1, 0), limit: 12, slowStart: false, baselineMs: 10, nextProbeAt: PROBE_EVERY_MS };
    const probing = nextLimit(s, window(25), bounds, PROBE_EVERY_MS);
    assert.equal(probing.limit, 6);
    const after = nextLimit(probing, window(30), bounds, PROBE_EVERY_MS + 1000);
    assert.equal(after.baselineMs, 30, 'the baseline moves to what the service does now');
    assert.equal(after.limit, 12);
  });
});

describe('overload signals', () => {
  it('are resets, timeouts, 429 and 503, and OverloadError, also as the cause of another error', () => {
    assert.ok(isOverload(new OverloadError()));
    assert.ok(isOverload(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })));
    assert.ok(
      isOverload(
        new SluiceError('STAGE_TIMEOUT', 'call failed', {
          cause: new TypeError('fetch failed', {
            cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }),
          }),
        }),
      ),
    );
    assert.ok(isOverload(Object.assign(new Error('too busy'), { status: 503 })));
    assert.ok(!isOverload(new Error('document is empty')));
    assert.ok(!isOverload(Object.assign(new Error('bad request'), { status: 400 })));
  });
});
