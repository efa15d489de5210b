// Chaos, end to end: fetchers and workers (separate processes, two machines) are killed with SIGKILL at
// random moments and restarted; reruns of produce reconcile. In the end every source key has exactly one
// result with every milestone, and nothing was quarantined.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { testDatabase } from '../helpers/db.js';
import { startE2E, type E2E, type Proc } from '../helpers/e2e.js';
import { ensureKafka } from '../helpers/kafka.js';

const ROWS = 6000;
let e: E2E | undefined;
let drop: (() => Promise<void>) | undefined;

before(async () => {
  await ensureKafka();
});
after(async () => {
  await e?.close();
  await drop?.();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until every task is done, or until the result count stops moving for `quietMs`. */
async function settle(h: E2E, quietMs: number, maxMs: number): Promise<number> {
  const deadline = Date.now() + maxMs;
  let last = -1;
  let since = Date.now();
  for (;;) {
    const { results } = await h.counts();
    if (results === ROWS) return results;
    if (results !== last) {
      last = results;
      since = Date.now();
    }
    if (Date.now() - since > quietMs || Date.now() > deadline) return results;
    await sleep(250);
  }
}

describe('chaos', () => {
  it(
    'loses nothing and does nothing twice through 12 kill -9s of fetchers and ' +
      'workers and up to 3 reruns of produce',
    async () => {
      const url = await testDatabase({ after: (fn: () => Promise<void>) => (drop = fn) });
      e = await startE2E({
        url,
        rows: ROWS,
        partitions: 4,
        stages:
          `[
        { name: 'recognise', concurrency: 4, run: async (p, ctx) => { ` +
          `await new Promise((r) => setTimeout(r, 8)); return { n: ctx.task.key }; ` +
          `} },
        { name: 'match', concurrency: 4, run: async (r) => { await new ` +
          `Promise((res) => setTimeout(res, 8)); return { matched: r.n }; } },
      ]`,
      });
      const h = e;
      const machines = [join(h.dir, 'machine-1'), join(h.dir, 'machine-2')];
      // Four roles, each always running in one process: a killed one is started again at once.
      const roles: Array<{ command: 'fetch' | 'work'; spool: string; proc: Proc }> = machines.flatMap((m) => [
        { command: 'fetch' as const, spool: m, proc: h.start('fetch', ['--spool-dir', m]) },
        { command: 'work' as const, spool: m, proc: h.start('work', ['--spool-dir', m]) },
      ]);
      assert.equal((await h.cli('produce')).code, 0);

      const kills: string[] = [];
      let progressDuringKills = 0;
      for (let i = 0; i < 12; i++) {
        await sleep(250 + Math.floor(Math.random() * 500));
        // Every role is killed at least once; the rest at random.
        const role = roles[i < roles.length ? i : Math.floor(Math.random() * roles.length)]!;
        role.proc.child.kill('SIGKILL');
        await role.proc.exited;
        kills.push(role.proc.label);
        role.proc = h.start(role.command, ['--spool-dir', role.spool]);
        progressDuringKills = (await h.counts()).results;
      }
      assert.equal(kills.length, 12);
      assert.ok(progressDuringKills < ROWS, `the kills landed while work was under way (${progressDuringKills} done)`);

      // Killed workers' segments come back when their 3 s leases run out; uncommitted batches are fetched again.
      let done = await settle(h, 8000, 90_000);
      let reruns = 0;
      while (done < ROWS && reruns < 3) {
        reruns++;
        const rerun = await h.cli('produce', ['--stale-after', '0']);
        assert.equal(rerun.code, 0, rerun.stderr);
        done = await settle(h, 8000, 60_000);
      }
      assert.deepEqual(await h.stopAll(), [0, 0, 0, 0], 'the restarted processes drain and exit 0');

      assert.equal(done, ROWS, `every task done within 3 reruns (took ${reruns})`);
      assert.deepEqual(await h.mismatches(), { missing: 0, extra: 0 }, 'results are exactly the source keys');
      const c = await h.counts();
      assert.equal(c.distinctResults, ROWS, 'one result per key');
      assert.equal(c.milestones, 2 * ROWS, 'every result has both milestones');
      assert.equal(c.quarantined, 0, 'nothing quarantined');
    },
  );
});
