// npm run bench:limits — fleet-wide limits against the demo's GPU-like service (src/demo/ner-service.ts:
// slots in parallel, a queue beyond them, resets above twice the slots), with 6 worker processes on 3 spool
// folders ("machines"). The service's ceiling (successful calls/s) is measured first, in the same run, by one
// client at its best fixed concurrency. Variants:
//   (a) fixed fleet-wide concurrency 8 on 8 slots;  (b) concurrency 'auto', then the slots change 8 -> 4 -> 12;
//   (c) today's per-process concurrency 8 on 6 processes, for contrast;  (d) two pipelines sharing a resource.
// Writes bench/results/limits.md/.json and a timeline of (b), bench/results/limits-timeline.svg.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { defaults } from '../src/config/config.js';
import { silentLogger } from '../src/core/logger.js';
import { sleep } from '../src/core/sleep.js';
import { withDatabase } from '../src/db/database-url.js';
import { migrate } from '../src/db/migrate.js';
import { startNerService } from '../src/demo/ner-service.js';
import { spoolPaths } from '../src/spool/layout.js';
import { SpoolWriter } from '../src/spool/writer.js';
import type { Check } from './lib.js';

const url = process.env.BENCH_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/sluice_bench_limits';
const CLI = new URL('../src/cli.ts', import.meta.url).pathname;
const PROCESSES = 6;
const MACHINES = 3;
const TASKS = 60_000;
/** Names of this run's own: the ledger and the resources of earlier runs stay out of it. */
const RUN = Math.random().toString(16).slice(2, 8);

// 50-70 ms a call: a GPU model's latency (the demo's default, 10-30 ms, would make this a benchmark of the
// client's turnaround on 2 shared cores rather than of the limits).
const ner = await startNerService({ slots: 8, randomResetRate: 0, minLatencyMs: 50, maxLatencyMs: 70 });
await migrate({ ...defaults.database, url }, silentLogger());
const db = await mysql.createConnection(withDatabase(url, new URL(url).pathname.slice(1)));
await db.query('DROP TABLE IF EXISTS bench_limits_src');
await db.query('CREATE TABLE bench_limits_src (id INT PRIMARY KEY)');
await db.query(`INSERT INTO bench_limits_src SELECT seq FROM seq_1_to_${TASKS}`);
const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-limits-'));

/** Successful calls per second of one client calling `width`-wide for `ms`. */
async function oneClient(width: number, ms: number): Promise<number> {
  const before = ner.stats().served;
  const start = performance.now();
  const end = start + ms;
  const loop = async (): Promise<void> => {
    while (performance.now() < end)
      await fetch(ner.url, { method: 'POST', body: '{"text":"x"}' })
        .then((r) => r.text())
        .catch(() => {});
  };
  await Promise.all(Array.from({ length: width }, loop));
  // Over the time it really took: the calls started before `end` finish after it, and count.
  return ((ner.stats().served - before) * 1000) / (performance.now() - start);
}

async function ceiling(slots: number): Promise<{ rate: number; width: number }> {
  ner.setSlots(slots);
  let best = { rate: 0, width: 0 };
  for (const width of [slots / 2, slots - 1, slots, slots + 2, slots + 4, Math.round(slots * 1.5)].map(Math.round)) {
    const rate = await oneClient(width, 4000);
    if (rate > best.rate) best = { rate, width };
  }
  console.error(`  ceiling with ${slots} slots: ${Math.round(best.rate)} calls/s at ${best.width} wide`);
  return best;
}

interface Sample {
  t: number;
  inService: number;
  served: number;
  resets: number;
  requests: number;
  limit: number | null;
}

/** Starts 6 workers on 3 machines for `pipelines` (name -> resource option of its stage), samples the service. */
async function fleetRun(
  label: string,
  resources: string,
  pipelines: Record<string, string>,
  ms: number,
  during: (t: number) => void = () => {},
): Promise<Sample[]> {
  const names = Object.keys(pipelines);
  const perPipeline = Math.floor(TASKS / names.length);
  const machines = Array.from({ length: MACHINES }, (_, m) => join(dir, label, `machine-${m}`));
  for (const [p, name] of names.entries()) {
    for (const [m, machine] of machines.entries()) {
      const writer = new SpoolWriter(spoolPaths(machine, name), 200);
      await writer.open();
      const keys = Array.from({ length: perPipeline }, (_, i) => p * perPipeline + i + 1).filter(
        (k) => k % MACHINES === m,
      );
      await writer.writeItems(
        0,
        keys.map((key) => ({
          partition: 0,
          offset: String(key),
          task: { v: 1, pipeline: name, key, payload: {}, attempt: 1, runId: 'r', producedAt: '' },
        })),
      );
    }
  }
  const config = join(dir, label, 'sluice.config.ts');
  const retry = 'retry: { maxAttempts: 50, initialDelayMs: 20, maxDelayMs: 500 }';
  const stage = (name: string): string => {
    const init = `{ method: 'POST', body: '{"text":"x"}', headers: { 'x-client': '${name}' }, signal: ctx.signal }`;
    return `{ name: 'ner', ${pipelines[name]} timeoutMs: 5000, ${retry},
      run: async (_p, ctx) => {
        let r;
        // fetch reports a reset as a TypeError, which sluice would take for a bug: say what it is.
        try { r = await fetch(${JSON.stringify(ner.url)}, ${init}); }
        catch (e) { if (ctx.signal.aborted) throw e; throw new Error('ner call failed: ' + e.message, { cause: e }); }
        if (!r.ok) throw new Error('status ' + r.status);
        return r.text();
      } }`;
  };
  const source = "source: { table: 'bench_limits_src', key: 'id', columns: [] }";
  const pipelineText = names.map((n) => `${n}: { topic: 't', ${source}, stages: [${stage(n)}] }`).join(', ');
  writeFileSync(
    config,
    `export default { worker: { pollMs: 20, shutdownGraceMs: 1000 }, resources: ${resources},
  pipelines: { ${pipelineText} } };\n`,
  );
  const env = { ...process.env, DATABASE_URL: url, SLUICE_CONFIG: config, SLUICE_LOG_LEVEL: 'warn' };
  const workers: ChildProcess[] = Array.from({ length: PROCESSES }, (_, i) =>
    spawn(
      process.execPath,
      ['--import', 'tsx', CLI, 'work', '--pipeline', names[i % names.length]!, '--spool-dir', machines[i % MACHINES]!],
      { env, stdio: ['ignore', 'ignore', 'inherit'] },
    ),
  );
  const samples: Sample[] = [];
  const t0 = performance.now();
  const resource = /^\{\s*'?(\w[\w-]*)/.exec(resources)?.[1];
  for (let t = 0; t < ms; t = performance.now() - t0) {
    const s = ner.stats();
    let limit: number | null = null;
    if (resource !== undefined && samples.length % 4 === 0) {
      const [rows] = await db.query<RowDataPacket[]>('SELECT learned_limit FROM sluice_resources WHERE name = ?', [
        resource,
      ]);
      limit = rows[0]?.learned_limit == null ? null : Number(rows[0].learned_limit);
    }
    samples.push({
      t,
      inService: s.inService,
      served: s.served,
      resets: s.resetsOverLimit,
      requests: s.requests,
      limit: limit ?? samples.at(-1)?.limit ?? null,
    });
    during(t);
    await sleep(250);
  }
  for (const w of workers) w.kill('SIGTERM');
  await Promise.all(
    workers.map((w) => (w.exitCode !== null ? Promise.resolve() : new Promise((r) => w.once('exit', r)))),
  );
  return samples;
}

/** Successful calls/s between two moments of a run. */
/** One row of the results table: a label, the goodput (rounded), then cells as they are. */
function tableRow(label: string, good: number, ...cells: Array<string | number>): string {
  return `| ${label} | ${Math.round(good)} | ${cells.join(' | ')} |`;
}

/** The most calls the service had in it at once among the samples in [from, to). */
function most(samples: Array<{ t: number; inService: number }>, from = 0, to = Infinity): number {
  return Math.max(...samples.filter((x) => x.t >= from && x.t < to).map((x) => x.inService));
}

function goodput(s: Sample[], fromMs: number, toMs: number): number {
  const a = s.find((x) => x.t >= fromMs)!;
  const b = [...s].reverse().find((x) => x.t <= toMs)!;
  return ((b.served - a.served) * 1000) / Math.max(1, b.t - a.t);
}

const resetShare = (s: Sample[], fromMs = 0, toMs = Infinity): number => {
  const w = s.filter((x) => x.t >= fromMs && x.t <= toMs);
  const calls = w.at(-1)!.requests - w[0]!.requests;
  return calls === 0 ? 0 : (w.at(-1)!.resets - w[0]!.resets) / calls;
};

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const rows: string[] = [];
const checks: Check[] = [];
const figures: Record<string, unknown> = {};

/** BENCH_LIMITS_ONLY=a,d runs only those variants (while tuning); the results files are written by a full run only. */
const ONLY = process.env.BENCH_LIMITS_ONLY?.split(',');
const runs = (v: string): boolean => ONLY === undefined || ONLY.includes(v);
const c8 = await ceiling(8);
const c4 = runs('b') ? await ceiling(4) : c8;
const c12 = runs('b') ? await ceiling(12) : c8;
ner.setSlots(8);
figures.ceilings = { 4: c4, 8: c8, 12: c12 };

// (a) fixed fleet-wide limit of 8 on 8 slots.
if (runs('a')) {
  const a = await fleetRun(
    'a',
    `{ 'gpu_${RUN}': { concurrency: 8 } }`,
    { [`bench_lim_a_${RUN}`]: `resource: 'gpu_${RUN}', concurrency: 64,` },
    25_000,
  );
  const aMost = Math.max(...a.map((x) => x.inService));
  const aGood = goodput(a, 5000, 25_000);
  rows.push(
    tableRow(
      `(a) fixed fleet-wide concurrency 8, 8 slots, ${PROCESSES} processes`,
      aGood,
      pct(aGood / c8.rate),
      aMost,
      pct(resetShare(a)),
    ),
  );
  checks.push({ target: '(a) most calls in flight the service saw <= 8', show: String(aMost), pass: aMost <= 8 });
  checks.push({
    target: '(a) goodput >= 95% of the ceiling',
    show: `${Math.round(aGood)}/s = ${pct(aGood / c8.rate)} of ${Math.round(c8.rate)}/s`,
    pass: aGood >= 0.95 * c8.rate,
  });
}

let bSamples: Sample[] = [];
// (b) learned limit; the slots change 8 -> 4 -> 12 while it runs.
if (runs('b')) {
  const b = await fleetRun(
    'b',
    `{ 'gpu_${RUN}': { concurrency: 'auto', min: 1, max: 64 } }`,
    { [`bench_lim_b_${RUN}`]: `resource: 'gpu_${RUN}', concurrency: 64,` },
    75_000,
    (t) => {
      if (t >= 25_000 && t < 25_300) ner.setSlots(4);
      if (t >= 50_000 && t < 50_300) ner.setSlots(12);
    },
  );
  const bStart = goodput(b, 10_000, 25_000);
  const b4 = goodput(b, 35_000, 50_000);
  const b12 = goodput(b, 60_000, 75_000);
  const bResets = resetShare(b, 0, 25_000);
  rows.push(
    tableRow(
      "(b) concurrency 'auto', 8 slots, from 10 s",
      bStart,
      pct(bStart / c8.rate),
      most(b, 0, 25_000),
      pct(bResets),
    ),
  );
  rows.push(
    tableRow(
      '(b) ... slots -> 4, from 10 s after the change',
      b4,
      pct(b4 / c4.rate),
      most(b, 25_000, 50_000),
      pct(resetShare(b, 25_000, 50_000)),
    ),
  );
  rows.push(
    tableRow(
      '(b) ... slots -> 12, from 10 s after the change',
      b12,
      pct(b12 / c12.rate),
      most(b, 50_000),
      pct(resetShare(b, 50_000)),
    ),
  );
  checks.push({
    target: "(b) 'auto': goodput >= 90% of the ceiling within 10 s",
    show: pct(bStart / c8.rate),
    pass: bStart >= 0.9 * c8.rate,
  });
  checks.push({ target: "(b) 'auto': overload resets <= 1% of calls", show: pct(bResets), pass: bResets <= 0.01 });
  checks.push({
    target: '(b) slots 8 -> 4: within 10% of the new ceiling within 10 s',
    show: pct(b4 / c4.rate),
    pass: b4 >= 0.9 * c4.rate,
  });
  checks.push({
    target: '(b) slots 4 -> 12: within 10% of the new ceiling within 10 s',
    show: pct(b12 / c12.rate),
    pass: b12 >= 0.9 * c12.rate,
  });
  ner.setSlots(8);
  figures.timeline = b.map((x) => [Math.round(x.t), x.inService, x.limit]);
  bSamples = b;
}

// (c) per-process limits only: 6 x 8 = 48 calls at once against 8 slots.
if (runs('c')) {
  const c = await fleetRun('c', '{}', { [`bench_lim_c_${RUN}`]: 'concurrency: 8,' }, 20_000);
  const cGood = goodput(c, 5000, 20_000);
  rows.push(
    tableRow(
      `(c) per-process concurrency 8 on ${PROCESSES} processes (no resource)`,
      cGood,
      pct(cGood / c8.rate),
      most(c),
      pct(resetShare(c)),
    ),
  );
}

// (d) two pipelines, 3 processes each, one resource of 8.
if (runs('d')) {
  const servedBefore = ner.stats().servedBy;
  const d = await fleetRun(
    'd',
    `{ 'gpu_${RUN}': { concurrency: 8 } }`,
    {
      [`bench_lim_d1_${RUN}`]: `resource: 'gpu_${RUN}', concurrency: 64,`,
      [`bench_lim_d2_${RUN}`]: `resource: 'gpu_${RUN}', concurrency: 64,`,
    },
    20_000,
  );
  const servedAfter = ner.stats().servedBy;
  const shares = [`bench_lim_d1_${RUN}`, `bench_lim_d2_${RUN}`].map(
    (n) => (servedAfter[n] ?? 0) - (servedBefore[n] ?? 0),
  );
  const dGood = goodput(d, 5000, 20_000);
  const jain = shares.reduce((x, y) => x + y, 0) ** 2 / (shares.length * shares.reduce((x, y) => x + y * y, 0));
  rows.push(
    tableRow(
      '(d) two pipelines x 3 processes sharing concurrency 8',
      dGood,
      pct(dGood / c8.rate),
      most(d),
      pct(resetShare(d)),
    ),
  );
  checks.push({
    target: "(d) two pipelines' shares of the calls: Jain's index >= 0.95",
    show: `${shares.join(' / ')} calls, index ${jain.toFixed(3)}`,
    pass: jain >= 0.95,
  });
}

const md = [
  `### limits (${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores, node ${process.version})`,
  '',
  "The demo's GPU-like service (50-70 ms a call, a queue beyond its slots, resets above twice the slots, no random " +
    `resets), ${PROCESSES} worker processes on ${MACHINES} spool folders, on the same machine as MariaDB. Ceilings ` +
    `measured first by one client at its best width: ${Math.round(c4.rate)}/s (4 slots, ${c4.width} wide), ` +
    `${Math.round(c8.rate)}/s (8 slots, ${c8.width} wide), ${Math.round(c12.rate)}/s (12 slots, ${c12.width} wide).`,
  '',
  '| variant | goodput calls/s | of the ceiling | most in the service at once | overload resets |',
  '| --- | ---: | ---: | ---: | ---: |',
  ...rows,
  '',
  '| target | result | met |',
  '| --- | --- | --- |',
  ...checks.map((x) => `| ${x.target} | ${x.show} | ${x.pass ? 'yes' : 'NO'} |`),
  '',
  'Timeline of (b): `bench/results/limits-timeline.svg` (calls in the service, learned limit).',
].join('\n');
console.log(md);
if (ONLY === undefined) {
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/limits.md', `${md}\n`);
  writeFileSync(
    'bench/results/limits.json',
    JSON.stringify({ date: new Date().toISOString(), figures, checks }, null, 2),
  );
  writeFileSync('bench/results/limits-timeline.svg', timeline(bSamples));
}
await ner.close();
await db.end();
rmSync(dir, { recursive: true, force: true });

function timeline(s: Sample[]): string {
  const W = 900;
  const H = 300;
  const maxT = s.at(-1)!.t;
  const maxY = Math.max(20, ...s.map((x) => Math.max(x.inService, x.limit ?? 0)));
  const x = (t: number): number => 40 + (t / maxT) * (W - 60);
  const y = (v: number): number => H - 30 - (v / maxY) * (H - 60);
  const line = (pts: Array<[number, number]>, color: string): string => {
    const points = pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    return `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${points}"/>`;
  };
  const title =
    "(b) concurrency 'auto': calls in the service (blue), learned limit (red), goodput in calls/s / 10 (green); " +
    'slots 8 -> 4 at 25 s -> 12 at 50 s';
  const xAxis = `<line x1="40" y1="${H - 30}" x2="${W - 20}" y2="${H - 30}" stroke="black"/>`;
  const good = s
    .slice(4)
    .map((p, i): [number, number] => [p.t, ((p.served - s[i]!.served) * 1000) / Math.max(1, p.t - s[i]!.t) / 10]);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">
<rect width="${W}" height="${H}" fill="white"/>
<text x="40" y="16">${title}</text>
${line(
  s.map((p) => [p.t, p.inService]),
  '#1f77b4',
)}
${line(
  s.filter((p) => p.limit !== null).map((p) => [p.t, p.limit!]),
  '#d62728',
)}
${line(good, '#2ca02c')}
${xAxis}<text x="${W - 60}" y="${H - 12}">${Math.round(maxT / 1000)} s</text>
<line x1="40" y1="30" x2="40" y2="${H - 30}" stroke="black"/><text x="8" y="34">${maxY}</text>
</svg>\n`;
}
