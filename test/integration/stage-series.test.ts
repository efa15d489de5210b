// The dashboard's stage charts against the real MariaDB: counts per bucket are exact, percentiles come from
// a log histogram (within its bin, and never outside the bucket's real minimum and maximum), and a bucket
// that is final is kept by the server, so a refresh reads only what came since.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Connection } from 'mysql2/promise';
import type { Pool } from '../../src/db/pool.js';
import { SeriesCache, stageSeries } from '../../src/ledger/stage-series.js';
import { randomName } from '../helpers/db.js';
import { fileDatabase } from '../helpers/fixtures.js';

let db: Connection;
let pool: Pool;
fileDatabase({ poolSize: 2 }, (d) => ({ db, pool } = d));

/** `n` milestones of stage 'ner' stamped `agoS` seconds ago, durations 1..n ms. */
async function milestones(pipeline: string, n: number, agoS: number, offset = 0): Promise<void> {
  await db.query(
    `INSERT INTO sluice_milestones (pipeline, task_key, stage, output, duration_ms, attempt, created_at)
     SELECT ?, CAST(seq + ? AS CHAR), 'ner', '{}', seq, 1, NOW(3) - INTERVAL ? SECOND FROM seq_1_to_${n}`,
    [pipeline, offset, agoS],
  );
}

describe('the stage charts', () => {
  it('count every milestone per bucket and give p50 and p99 within a histogram bin of the truth', async () => {
    const p = randomName('p');
    await milestones(p, 1000, 125);
    const series = await stageSeries(pool, p, ['ner'], 30, 60);
    const points = series.ner!;
    assert.equal(
      points.reduce((s, x) => s + x.done, 0),
      1000,
    );
    // All stamped in the same second: one bucket. Durations 1..1000: p50 500, p99 990 (bins about 9% wide).
    assert.equal(points.length, 1);
    const [one] = points;
    assert.ok(Math.abs(one!.p50Ms! - 500) <= 25, `p50 ${one!.p50Ms}`);
    assert.ok(Math.abs(one!.p99Ms! - 990) <= 45 && one!.p99Ms! <= 1000, `p99 ${one!.p99Ms}`);
    for (const x of points) assert.ok(x.p50Ms! >= 1 && x.p99Ms! <= 1000 && x.p50Ms! <= x.p99Ms!);
  });

  it('keep final buckets between refreshes: a refresh reads only the buckets since', async () => {
    const p = randomName('p');
    await milestones(p, 50, 300);
    const cache = new SeriesCache();
    const first = await stageSeries(pool, p, ['ner'], 30, 10, cache);
    assert.equal(
      first.ner!.reduce((s, x) => s + x.done, 0),
      50,
    );
    // Gone from the table, still on the chart: the old bucket was final, so it was not read again.
    await db.query('DELETE FROM sluice_milestones WHERE pipeline = ?', [p]);
    await milestones(p, 7, 0, 1000);
    const second = await stageSeries(pool, p, ['ner'], 30, 10, cache);
    assert.equal(
      second.ner!.reduce((s, x) => s + x.done, 0),
      57,
    );
    // Without the server's cache, the table is the truth.
    const fresh = await stageSeries(pool, p, ['ner'], 30, 10);
    assert.equal(
      fresh.ner!.reduce((s, x) => s + x.done, 0),
      7,
    );
  });
});
