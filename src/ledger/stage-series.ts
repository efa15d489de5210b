// The stage charts: per stage, milestones per bucket and latency p50/p99 over time.
//
// At scale two things matter. Each milestone's duration is read from the index (pipeline, stage, created_at,
// duration_ms) alone: reading it from the row costs one random read per milestone, seconds for the milestones
// of half an hour at scale (bench:scale). And a bucket that closed more than SETTLE_S ago
// no longer changes, so the server keeps it: a refresh reads only the buckets since, whatever the window.
// Percentiles come from a histogram of 8 bins per doubling (bins about 9% wide; the middle of the bin is
// shown, clamped to the bucket's real minimum and maximum), computed in SQL by GROUP BY.

import type { RowDataPacket } from 'mysql2/promise';
import type { Pool } from '../db/pool.js';

export interface StagePoint {
  /** Start of the bucket, ISO-8601. */
  at: string;
  done: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

const BINS_PER_DOUBLING = 8;
/** Milestones are written in batches a moment after they are stamped: a bucket is final this long after it ends. */
const SETTLE_S = 15;

interface Covered {
  /** Every bucket that starts before this (unix seconds) is final and in `points` (an empty one is absent). */
  until: number;
  points: Map<number, StagePoint>;
}

/** Final buckets, per pipeline, stage and bucket width, kept by the dashboard server between refreshes. */
export class SeriesCache {
  readonly #covered = new Map<string, Covered>();

  get(key: string): Covered {
    let c = this.#covered.get(key);
    if (c === undefined) this.#covered.set(key, (c = { until: 0, points: new Map() }));
    return c;
  }
}

/** Per stage, milestones per `bucketS` over the last `minutes`, with latency percentiles. */
export async function stageSeries(
  pool: Pool,
  pipeline: string,
  stages: readonly string[],
  minutes = 30,
  bucketS = 10,
  cache = new SeriesCache(),
): Promise<Record<string, StagePoint[]>> {
  const [[clock]] = await pool.query<RowDataPacket[]>('SELECT UNIX_TIMESTAMP(NOW(3)) AS t');
  const now = Number(clock?.t);
  const from = Math.floor((now - minutes * 60) / bucketS) * bucketS;
  const out: Record<string, StagePoint[]> = {};
  for (const stage of stages) {
    const c = cache.get(`${pipeline}\u0000${stage}\u0000${bucketS}`);
    for (const b of c.points.keys()) if (b < from - 24 * 3600) c.points.delete(b);
    const start = Math.max(from, c.until);
    const fresh = await bucketsSince(pool, pipeline, stage, start, bucketS);
    const finalUntil = Math.floor((now - SETTLE_S) / bucketS) * bucketS;
    for (const [b, p] of fresh) if (b < finalUntil) c.points.set(b, p);
    c.until = Math.max(c.until, finalUntil);
    const points = new Map([...c.points].filter(([b]) => b >= from && b < start));
    for (const [b, p] of fresh) points.set(b, p);
    out[stage] = [...points.entries()].sort((x, y) => x[0] - y[0]).map(([, p]) => p);
  }
  return out;
}

async function bucketsSince(
  pool: Pool,
  pipeline: string,
  stage: string,
  start: number,
  bucketS: number,
): Promise<Map<number, StagePoint>> {
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT FLOOR(UNIX_TIMESTAMP(created_at) / ?) * ? AS b, FLOOR(LOG2(duration_ms + 1) * ${BINS_PER_DOUBLING}) AS h,
       COUNT(*) AS n, MIN(duration_ms) AS lo, MAX(duration_ms) AS hi
     FROM sluice_milestones WHERE pipeline = ? AND stage = ? AND created_at >= FROM_UNIXTIME(?)
     GROUP BY b, h ORDER BY b, h`,
    [bucketS, bucketS, pipeline, stage, start],
  );
  const byBucket = new Map<number, Array<{ h: number; n: number; lo: number; hi: number }>>();
  for (const r of rows) {
    const b = Number(r.b);
    const list = byBucket.get(b) ?? [];
    list.push({ h: Number(r.h), n: Number(r.n), lo: Number(r.lo), hi: Number(r.hi) });
    byBucket.set(b, list);
  }
  const out = new Map<number, StagePoint>();
  for (const [b, bins] of byBucket) {
    const done = bins.reduce((s, x) => s + x.n, 0);
    out.set(b, {
      at: new Date(b * 1000).toISOString(),
      done,
      p50Ms: quantile(bins, done, 0.5),
      p99Ms: quantile(bins, done, 0.99),
    });
  }
  return out;
}

/** The q-quantile of a bucket from its histogram bins (ascending): the middle of the bin it falls in. */
function quantile(
  bins: ReadonlyArray<{ h: number; n: number; lo: number; hi: number }>,
  total: number,
  q: number,
): number {
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const bin of bins) {
    seen += bin.n;
    if (seen < rank) continue;
    const mid = 2 ** ((bin.h + 0.5) / BINS_PER_DOUBLING) - 1;
    return Math.round(Math.min(bin.hi, Math.max(bin.lo, mid)) * 10) / 10;
  }
  return bins.at(-1)?.hi ?? 0;
}
