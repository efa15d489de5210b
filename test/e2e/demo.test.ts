// The demo job end to end on a small data set: real MariaDB, Kafka, spool, workers, and the flaky
// entity-recognition service called wider than it allows, so that resets happen and are absorbed.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { type SluiceConfig } from '../../src/config/config.js';
import { silentLogger } from '../../src/core/logger.js';
import { runDemo } from '../../src/demo/run-demo.js';
import { findEntities, startNerService } from '../../src/demo/ner-service.js';
import { demoDocument } from '../../src/demo/data.js';
import { randomName } from '../helpers/db.js';
import { ensureKafka } from '../helpers/kafka.js';
import { makeConfig } from '../helpers/fixtures.js';

/** A fresh, migrated database, a spool folder and a group of the test's own, for the demo pipeline. */
async function demoConfig(t: TestContext, poolSize?: number): Promise<SluiceConfig> {
  await ensureKafka();
  const source = { table: 'sluice_demo_documents', key: 'id', columns: ['title', 'body', 'lang'] };
  return (
    await makeConfig(t, {
      ...(poolSize === undefined ? {} : { database: { poolSize } }),
      pipelines: { demo: { topic: randomName('sluice-demo'), partitions: 3, source } },
    })
  ).config;
}

describe('the demo', () => {
  it(
    'the simulated GPU queues calls beyond its slots (latency grows), resets ' +
      'calls beyond its hard limit, and changes capacity while it runs',
    async () => {
      const ner = await startNerService({ slots: 2, randomResetRate: 0, minLatencyMs: 100, maxLatencyMs: 100 });
      try {
        const call = async (): Promise<number> => {
          const t0 = performance.now();
          await (await fetch(ner.url, { method: 'POST', body: JSON.stringify({ text: 'x' }) })).json();
          return performance.now() - t0;
        };
        // The client's first request sets up its connections (slow on a busy machine): not part of what is timed.
        await call();
        const six = await Promise.allSettled(Array.from({ length: 6 }, call));
        const ms = six.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])).sort((a, b) => a - b);
        assert.equal(ms.length, 4, '2 running + 2 queued are served');
        assert.equal(ner.stats().resetsOverLimit, 2);
        assert.equal(ner.stats().mostAtOnce, 4, '2 running and 2 queued at once');
        assert.ok(
          ms[3]! > ms[0]! + 60,
          `the queued calls waited a 100 ms call for a slot (${ms.map(Math.round).join(', ')} ms)`,
        );
        ner.setSlots(4);
        const again = await Promise.allSettled(Array.from({ length: 8 }, call));
        assert.equal(again.filter((r) => r.status === 'fulfilled').length, 8, 'with 4 slots the hard limit is 8');
        const control = await fetch(ner.url.replace('/ner', '/control'), {
          method: 'POST',
          body: JSON.stringify({ slots: 3 }),
        });
        assert.equal(((await control.json()) as { slots: number }).slots, 3);
      } finally {
        await ner.close();
      }
    },
  );

  it('the simulated service resets calls beyond its limit and answers the others', async () => {
    const ner = await startNerService({
      slots: 2,
      hardLimit: 2,
      randomResetRate: 0,
      minLatencyMs: 30,
      maxLatencyMs: 30,
    });
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 6 }, () =>
          fetch(ner.url, { method: 'POST', body: JSON.stringify({ text: demoDocument(3).body }) }).then((r) =>
            r.json(),
          ),
        ),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 2);
      assert.equal(ner.stats().resetsOverLimit, 4);
      const ok = results.find((r) => r.status === 'fulfilled') as PromiseFulfilledResult<{ entities: string[] }>;
      assert.deepEqual(ok.value.entities, findEntities(demoDocument(3).body));
    } finally {
      await ner.close();
    }
  });

  it('finishes every document although the entity service resets calls, thanks to retries', async (t) => {
    // The demo's workers share the process's one pool: 8 connections, as two worker processes of 4 would
    // hold, so that the database keeps up with both calling the service at full width.
    const config = await demoConfig(t, 8);
    // Two workers calling 12-wide each, against a service that takes 16 at once: today's per-process limit,
    // deliberately wrong for the fleet, so calls are reset but (with 8 attempts per task) none runs out.
    const s = await runDemo({
      config,
      log: silentLogger(),
      documents: 300,
      nerConcurrency: 12,
      workers: 2,
      stallMs: 60_000,
    });
    assert.equal(s.completed, true);
    assert.equal(s.done, 300);
    assert.equal(s.quarantined, 0);
    // 30% were done by the "offline run" already: only the rest was published and run.
    assert.equal(s.offline, 90);
    assert.equal(s.published, 210);
    assert.deepEqual(s.milestones, { lookup: 210, match: 210, ner: 210 });
    assert.ok(s.ner.resetsOverLimit > 0, 'calls beyond the limit were reset');
    assert.ok(s.retries >= s.ner.resetsOverLimit, 'every reset was recorded and retried');
  });

  it('runs two workers on the auto-limited resource: every document done, no call reset for overload', async (t) => {
    const config = await demoConfig(t);
    const s = await runDemo({ config, log: silentLogger(), documents: 1000, workers: 2, stallMs: 60_000 });
    assert.equal(s.completed, true);
    assert.equal(s.done, 1000);
    assert.equal(
      s.ner.resetsOverLimit,
      0,
      `no overload resets (at most ${s.ner.mostAtOnce} in the service at once, hard limit ${s.ner.hardLimit})`,
    );
    assert.ok(
      s.learnedLimit !== null && s.learnedLimit >= 2 && s.learnedLimit <= s.ner.hardLimit,
      `learned limit ${s.learnedLimit}`,
    );
  });
});
