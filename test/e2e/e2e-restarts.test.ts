// The broker and the database restarted in the middle of a run: fetcher and workers (separate processes)
// recover by themselves, say so in their logs, and lose nothing. The test runs its own broker and its own
// second mariadbd (own ports, own data folders), so restarting them disturbs no other test.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startE2E, type E2E } from '../helpers/e2e.js';
import { startPrivateBroker, type PrivateBroker } from '../helpers/kafka.js';
import { startPrivateMariaDB, type PrivateMariaDB } from '../helpers/mariadb.js';
import { waitFor } from '../helpers/spool.js';

const ROWS = 8000;
let broker: PrivateBroker | undefined;
let mariadb: PrivateMariaDB | undefined;
let e: E2E | undefined;

before(async () => {
  [broker, mariadb] = await Promise.all([startPrivateBroker(), startPrivateMariaDB()]);
});
after(async () => {
  await e?.close();
  await broker?.stop();
  await mariadb?.stop();
});

describe('service restarts', () => {
  it(
    'finishes the job without losing a task when the broker and then the ' +
      'database are killed and restarted mid-run',
    async (t) => {
      e = await startE2E({
        url: mariadb!.url('sluice_restarts'),
        brokers: broker!.brokers,
        rows: ROWS,
        partitions: 4,
        // Slow enough that both outages land while work is under way.
        stages:
          `[{ name: 'slow', concurrency: 4, run: async (p, ctx) => { await new ` +
          `Promise((r) => setTimeout(r, 10)); return { key: ctx.task.key }; } }]`,
        // Low spool marks and small fetches keep the fetcher pulling from the broker for the whole run.
        config: {
          spool: { leaseMs: 3000, maxSegmentItems: 100, highWaterItems: 400, lowWaterItems: 200 },
          fetcher: { maxBytes: 65_536, maxBytesPerPartition: 16_384 },
        },
      });
      const h = e;
      const fetcher = h.start('fetch');
      const worker = h.start('work');
      assert.equal((await h.cli('produce')).code, 0);
      const progress = async (n: number, what: string) =>
        waitFor(what, async () => (await h.counts().catch(() => ({ results: -1 }))).results >= n, 120_000);

      // The database first: at 500 results the worker is busy writing, so it meets the outage.
      await progress(500, '500 results before the database restart');
      await mariadb!.kill();
      await new Promise((r) => setTimeout(r, 3000));
      await mariadb!.restart();
      await h.reconnect();

      // Then the broker, once work flows again; the fetcher's consumer meets it whether workers are busy or not.
      const atDbRestart = (await h.counts()).results;
      await progress(atDbRestart + 300, 'work flowing again after the database restart');
      const beforeBroker = (await h.counts()).results;
      assert.ok(beforeBroker < ROWS - 1000, `the broker restart lands while work is under way (${beforeBroker} done)`);
      broker!.kill();
      await new Promise((r) => setTimeout(r, 3000));
      await broker!.restart();

      await progress(ROWS, 'every task done after both restarts');
      assert.equal(fetcher.child.exitCode, null, 'the fetcher never exited');
      assert.equal(worker.child.exitCode, null, 'the worker never exited');
      assert.deepEqual(await h.stopAll(), [0, 0]);

      assert.deepEqual(await h.mismatches(), { missing: 0, extra: 0 });
      assert.equal((await h.counts()).quarantined, 0);
      // Clear log lines: what went away and that it was retried.
      assert.match(
        fetcher.log(),
        /consumer crashed|Connection error|ECONNREFUSED|KafkaJSConnectionError/i,
        'the fetcher says the broker went away',
      );
      assert.match(
        worker.log(),
        /ledger write failed; retrying|reading task state failed; retrying/,
        'the worker says it waits for the database',
      );
      const first = (log: string, re: RegExp) =>
        log
          .split('\n')
          .find((l) => re.test(l))
          ?.slice(0, 300) ?? '(none)';
      t.diagnostic(`fetcher: ${first(fetcher.log(), /consumer crashed|ECONNREFUSED/)}`);
      t.diagnostic(`worker: ${first(worker.log(), /retrying/)}`);
    },
  );
});
