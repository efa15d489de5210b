// The demo job end to end on a small data set: real MariaDB, Kafka, spool, workers, and the flaky
// entity-recognition service called wider than it allows, so that resets happen and are absorbed.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { defaults, mergeLayers } from '../../src/core/config.js';
import { validateConfig } from '../../src/core/config-validate.js';
import { silentLogger } from '../../src/core/logger.js';
import { migrate } from '../../src/db/migrate.js';
import { runDemo } from '../../src/demo/run-demo.js';
import { findEntities, startNerService } from '../../src/demo/ner-service.js';
import { demoDocument } from '../../src/demo/data.js';
import { dbConfig, randomName, testDatabase } from '../helpers/db.js';
import { BROKERS, ensureKafka } from '../helpers/kafka.js';

describe('the demo', () => {
  it('the simulated service resets calls beyond its limit and answers the others', async () => {
    const ner = await startNerService({ maxConcurrent: 2, randomResetRate: 0, minLatencyMs: 30, maxLatencyMs: 30 });
    try {
      const results = await Promise.allSettled(Array.from({ length: 6 }, () => fetch(ner.url, { method: 'POST', body: JSON.stringify({ text: demoDocument(3).body }) }).then((r) => r.json())));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 2);
      assert.equal(ner.stats().resetsOverLimit, 4);
      const ok = results.find((r) => r.status === 'fulfilled') as PromiseFulfilledResult<{ entities: string[] }>;
      assert.deepEqual(ok.value.entities, findEntities(demoDocument(3).body));
    } finally {
      await ner.close();
    }
  });

  it('finishes every document although the entity service resets calls, thanks to retries', async (t) => {
    await ensureKafka();
    const url = await testDatabase(t);
    await migrate(dbConfig(url), silentLogger());
    const spool = mkdtempSync(join(tmpdir(), 'sluice-demo-'));
    t.after(() => rmSync(spool, { recursive: true, force: true }));
    const config = validateConfig(
      mergeLayers(structuredClone(defaults), {
        database: { url },
        kafka: { brokers: BROKERS },
        fetcher: { groupId: randomName('demo-group') },
        spool: { dir: spool },
        worker: { pollMs: 20 },
        pipelines: { demo: { topic: randomName('sluice-demo'), partitions: 3, source: { table: 'sluice_demo_documents', key: 'id', columns: ['title', 'body', 'lang'] } } },
      }),
    );
    // 10 calls at once against a service that allows 8: the limit is deliberately a little wrong here, so
    // calls are reset but (with 8 attempts per task) none runs out of attempts. At 12-wide on 10,000
    // documents, 7% did: see the README.
    const s = await runDemo({ config, log: silentLogger(), documents: 300, nerConcurrency: 10, nerMaxConcurrent: 8, stallMs: 60_000 });
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
});
