// A recompute through a kill -9, with sluice's real commands as separate processes: a worker killed half way through
// recomputing, a second `produce --recompute`, and the work finished by another worker. While it runs, the user's
// result table never lacks a row for any key (the old result stays until the new one replaces it); at the end every
// task is current, each key has exactly one row, and a third --recompute publishes nothing.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { RowDataPacket } from 'mysql2/promise';
import { sleep } from '../../src/core/sleep.js';
import { startE2E, type E2E } from '../helpers/e2e.js';
import { testDatabase } from '../helpers/db.js';
import { ensureKafka } from '../helpers/kafka.js';

const ROWS = 1500;
let e: E2E | undefined;
let drop: (() => Promise<void>) | undefined;
after(async () => {
  await e?.close();
  await drop?.();
});

const STAGES = `[
  { name: 'ner', version: process.env.NER_VERSION ?? '1', concurrency: 8, run: async (p) => ({ text: p.body }) },
  { name: 'lookup', concurrency: 8, run: async (o) => ({ text: o.text }) },
  { name: 'match', version: process.env.MATCH_VERSION ?? '1', concurrency: 8, run: async (o) => {
    await new Promise((r) => setTimeout(r, 20));
    return { label: o.text + '/' + (process.env.MATCH_VERSION ?? '1') };
  } },
]`;

async function scalar(h: E2E, sql: string, params: unknown[] = []): Promise<number> {
  const [rows] = await h.db.query<RowDataPacket[]>(sql, params);
  return Number(rows[0]?.n ?? 0);
}

async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('a recompute through a kill -9', () => {
  it('leaves every task current and exactly one row per key, never a key without its row', async () => {
    await ensureKafka();
    drop = undefined;
    const url = await testDatabase({ after: (fn: () => Promise<void>) => (drop = fn) });
    e = await startE2E({
      url,
      rows: ROWS,
      partitions: 2,
      stages: STAGES,
      // Requests older than 2 s count as lost: the second --recompute publishes what the killed worker held.
      config: { producer: { progressIntervalMs: 1000, staleAfterMs: 2000 } },
      results: {
        columns: 'doc_id BIGINT PRIMARY KEY, label VARCHAR(100) NOT NULL',
        config: "{ table: 'e2e_results', key: 'doc_id', columns: ['label'], row: (o) => ({ label: o.label }) }",
      },
    });
    const h = e;
    const rows = (): Promise<number> => scalar(h, 'SELECT COUNT(*) AS n FROM e2e_results');
    const labelled = (v: string): Promise<number> =>
      scalar(h, 'SELECT COUNT(*) AS n FROM e2e_results WHERE label LIKE ?', [`%/${v}`]);

    assert.equal((await h.cli('produce')).code, 0);
    h.start('fetch');
    h.start('work');
    await until('the first run', async () => (await rows()) === ROWS, 120_000);
    await h.stopAll();

    const v2 = { MATCH_VERSION: '2' };
    const first = await h.cli('produce', ['--recompute', '--json'], v2);
    assert.equal(first.code, 0, first.stderr);
    assert.equal((JSON.parse(first.stdout) as { published: number }).published, ROWS);
    h.start('fetch', [], v2);
    const doomed = h.start('work', [], v2);
    // Sampled all along: the old row stays until the new one replaces it.
    let fewest = ROWS;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        fewest = Math.min(fewest, await rows());
        await sleep(20);
      }
    })();
    await until('the recompute half way', async () => (await labelled('2')) >= ROWS / 3, 120_000);
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    const midway = await labelled('2');
    assert.ok(midway < ROWS, `killed mid-recompute (${midway} of ${ROWS} recomputed)`);

    await sleep(2500);
    const second = await h.cli('produce', ['--recompute', '--json'], v2);
    assert.equal(second.code, 0, second.stderr);
    h.start('work', [], v2);
    await until(
      'every task current',
      async () => (await h.cli('status', ['--check', '--current'], v2)).code === 0,
      180_000,
    );
    sampling = false;
    await sampler;
    await h.stopAll();

    assert.equal(fewest, ROWS, 'never a key without its row');
    assert.equal(await rows(), ROWS, 'exactly one row per key');
    assert.equal(await labelled('2'), ROWS, 'every row recomputed');
    const left = await scalar(h, 'SELECT COUNT(*) AS n FROM sluice_recomputes WHERE pipeline = ?', [h.name]);
    const third = await h.cli('produce', ['--recompute', '--json'], v2);
    const published = (JSON.parse(third.stdout) as { published: number }).published;
    assert.deepEqual({ published, left }, { published: 0, left: 0 });
  });
});
