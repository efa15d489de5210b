// npm run bench:profile [-- <git-ref>] [--tasks 100000] — where this checkout's worker (or a ref's, from its
// bench:compare worktree) spends its time and memory, by the harness of bench:compare (bench/compare/), on the
// no-op and the 20 ms stage:
//   cpu     `work` under node --cpu-prof: CPU per task by where the code lives and by sluice feature
//   heap    two heap snapshots of one no-op run (at 1/4 and 3/4 of its tasks): what the heap keeps per task seen
//   rss     peak RSS of no-op runs of n/2 and 2n tasks: memory per task seen from outside; 20 ms stage at
//           maxInFlight 64 and 512: memory per task in flight
//   db      the server's counters per task (statements, rows, fsyncs, CPU)
// Prints Markdown (docs/performance.md quotes it) and writes bench/results/profile.md and .json.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { StageSpec } from './compare/fixture.js';
import { openHarness, type Harness } from './compare/harness.js';
import { NOOP, WAIT20 } from './compare/scenarios.js';
import { prepareWork, runWork, type Measure, type RunContext, type Template } from './compare/steps.js';
import { refWorktree, thisCheckout, type Side } from './compare/worktree.js';
import { analyse, type CpuBreakdown } from './profile/cpu-profile.js';
import { growth, heapByKind, total } from './profile/heap-snapshot.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { tasks: { type: 'string' } } });
const N = Number(values.tasks ?? process.env.BENCH_PROFILE_TASKS ?? 100_000);
if (!Number.isInteger(N) || N < 1000 || N % 2 !== 0) {
  console.error(
    `bench:profile: --tasks must be an even whole number of at least ` +
      `1000, got ${String(values.tasks ?? process.env.BENCH_PROFILE_TASKS)}`,
  );
  process.exit(2);
}
const WAIT_N = Math.max(16_000, Math.round(N / 3));

const us = (ms: number, tasks: number): string => ((1000 * ms) / tasks).toFixed(1);

function cpuTable(title: string, b: CpuBreakdown, m: Measure): string[] {
  const busy = b.busyMs;
  return [
    `#### ${title}: ${m.tasks.toLocaleString('en-US')} ` +
      `tasks at ${Math.round(m.rate)}/s under the ` +
      `profiler; ${us(busy, m.tasks)} µs of CPU per task on the main ` +
      `thread (idle ${(b.idleMs / 1000).toFixed(1)} s of ${((busy + b.idleMs) / 1000).toFixed(1)} s)`,
    '',
    '| where (self time) | µs per task | share |',
    '| --- | ---: | ---: |',
    ...b.byPlace.slice(0, 14).map((p) => `| ${p.place} | ${us(p.ms, m.tasks)} | ${Math.round((100 * p.ms) / busy)}% |`),
    '',
    '| charged to (the nearest sluice feature on the stack) | µs per task | share |',
    '| --- | ---: | ---: |',
    ...b.byFeature
      .filter((f) => f.ms / m.tasks >= 0.0001)
      .slice(0, 18)
      .map((f) => `| ${f.feature} | ${us(f.ms, m.tasks)} | ${Math.round((100 * f.ms) / busy)}% |`),
    '',
    '| hottest functions (self) | µs per task |',
    '| --- | ---: |',
    ...b.topFunctions.slice(0, 10).map((f) => `| \`${f.fn}\` | ${us(f.ms, m.tasks)} |`),
    '',
  ];
}

async function cpuRun(
  side: Side,
  ctx: RunContext,
  t: Template,
  stage: StageSpec,
  name: string,
  n: number,
): Promise<{ b: CpuBreakdown; m: Measure }> {
  const dir = join(ctx.dir, `cpu-${name}`);
  mkdirSync(dir, { recursive: true });
  const m = await runWork(side, ctx, t, stage, name, n, { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error(`no .cpuprofile written in ${dir}`);
  return { b: analyse(join(dir, file)), m };
}

async function heapRun(side: Side, ctx: RunContext, t: Template, n: number): Promise<string[]> {
  const dir = join(ctx.dir, 'heap');
  mkdirSync(dir, { recursive: true });
  const marks = [Math.round(n / 4), Math.round((3 * n) / 4)];
  const taken: number[] = [];
  await runWork(side, ctx, t, NOOP, 'heap', n, {
    nodeFlags: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`],
    watch: (count, p) => {
      // A snapshot pauses the process while it is written: one at a time, each after its mark.
      if (taken.length < marks.length && count >= marks[taken.length]! && readdirSync(dir).length === taken.length) {
        taken.push(count);
        p.signal('SIGUSR2');
      }
    },
  });
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.heapsnapshot'))
    .sort();
  if (files.length < 2) return [`(heap: only ${files.length} snapshot(s) were written; the run was too short)`];
  const [a, b] = [heapByKind(join(dir, files[0]!)), heapByKind(join(dir, files[1]!))];
  const seen = taken[1]! - taken[0]!;
  return [
    `#### Heap kept per task seen (no-op): ` +
      `snapshots after ${taken[0]!.toLocaleString('en-US')} and ${taken[1]!.toLocaleString('en-US')} ` +
      `results; ` +
      `live heap ${(total(a) / 2 ** 20).toFixed(1)} MB -> ` +
      `${(total(b) / 2 ** 20).toFixed(1)} MB = ` +
      `${((total(b) - total(a)) / seen).toFixed(0)} ` +
      `bytes per task seen`,
    '',
    '| kind of object (V8 type and constructor) | bytes per task seen |',
    '| --- | ---: |',
    ...growth(a, b, seen).map((g) => `| ${g.kind} | ${g.bytesPerUnit.toFixed(1)} |`),
    '',
  ];
}

interface Profile {
  plain: Measure;
  cpuNoop: { b: CpuBreakdown; m: Measure };
  cpuWait: { b: CpuBreakdown; m: Measure };
  heap: string[];
  rss: { half: Measure; double: Measure; w64: Measure; w512: Measure };
}

async function measureAll(side: Side, h: Harness): Promise<Profile> {
  const { ctx, log } = h;
  log(`preparing ${N} no-op tasks and ${WAIT_N} 20 ms tasks (produce + fetch by ${side.describe})`);
  const noop = await prepareWork(side, ctx, 'noop', NOOP, N);
  const wait = await prepareWork(side, ctx, 'wait', WAIT20, WAIT_N);
  const half = await prepareWork(side, ctx, 'half', NOOP, N / 2);
  const double = await prepareWork(side, ctx, 'double', NOOP, 2 * N);
  log("plain no-op run (no profiler), with the server's counters");
  const plain = await runWork(side, ctx, noop, NOOP, 'plain', N);
  log('cpu profiles');
  const cpuNoop = await cpuRun(side, ctx, noop, NOOP, 'noop', N);
  const cpuWait = await cpuRun(side, ctx, wait, WAIT20, 'wait', WAIT_N);
  log('heap snapshots');
  const heap = await heapRun(side, ctx, noop, N);
  log('peak RSS by tasks seen and in flight');
  const rss = {
    half: await runWork(side, ctx, half, NOOP, 'half', N / 2),
    double: await runWork(side, ctx, double, NOOP, 'double', 2 * N),
    w64: await runWork(side, ctx, wait, { ...WAIT20, concurrency: 64 }, 'wait64', WAIT_N, { maxInFlight: 64 }),
    w512: await runWork(side, ctx, wait, { ...WAIT20, concurrency: 512 }, 'wait512', WAIT_N, { maxInFlight: 512 }),
  };
  return { plain, cpuNoop, cpuWait, heap, rss };
}

function render(side: Side, p: Profile, minutes: number): string[] {
  const c = p.plain.counters;
  const per = (x: number): string => (x / N).toFixed(3);
  const { half, double, w64, w512 } = p.rss;
  return [
    `### ` +
      `bench:profile (${new Date().toISOString().slice(0, 16)}Z, ${side.describe}, ${cpus().length} ` +
      `cores, node ${process.version})`,
    '',
    `Plain ` +
      `no-op run of ${N.toLocaleString('en-US')} tasks: ${Math.round(p.plain.rate)}/s ` +
      `steady, ` +
      `peak RSS ${p.plain.peakRssMb} MB, ${((1e6 * p.plain.cpuSeconds) / N).toFixed(0)} ` +
      `µs CPU per task in the worker process (all ` +
      `threads), ${((1e6 * c.dbCpuSeconds) / N).toFixed(0)} µs in the ` +
      `database server.`,
    `Server counters per task: ${per(c.Questions)} ` +
      `statements (${per(c.Com_select)} SELECT, ${per(c.Com_insert)} ` +
      `INSERT, ${per(c.Com_commit)} COMMIT), ${per(c.Rows_read)} ` +
      `rows read, ${per(c.Handler_write + c.Handler_update)} rows ` +
      `written, ${per(c.Innodb_data_fsyncs)} ` +
      `fsyncs, ${(c.Bytes_received / N).toFixed(0)} bytes sent to the server.`,
    '',
    ...cpuTable('CPU, no-op stage', p.cpuNoop.b, p.cpuNoop.m),
    ...cpuTable('CPU, one stage awaiting 20 ms, concurrency 64', p.cpuWait.b, p.cpuWait.m),
    ...p.heap,
    '#### Peak RSS',
    '',
    '| run | tasks | peak RSS MB |',
    '| --- | ---: | ---: |',
    `| no-op | ${(N / 2).toLocaleString('en-US')} | ${half.peakRssMb} |`,
    `| no-op | ${N.toLocaleString('en-US')} | ${p.plain.peakRssMb} |`,
    `| no-op | ${(2 * N).toLocaleString('en-US')} | ${double.peakRssMb} |`,
    `| 20 ms stage, concurrency = maxInFlight = 64 | ${WAIT_N.toLocaleString('en-US')} | ${w64.peakRssMb} |`,
    `| 20 ms stage, concurrency = maxInFlight = 512 | ${WAIT_N.toLocaleString('en-US')} | ${w512.peakRssMb} |`,
    '',
    `Per task seen ` +
      `(no-op, ${(N / 2).toLocaleString('en-US')} -> ` +
      `${(2 * N).toLocaleString('en-US')}): ` +
      `${((1024 * 1024 * (double.peakRssMb - half.peakRssMb)) / (1.5 * N)).toFixed(0)} ` +
      `bytes of peak RSS. Per task in flight (64 ` +
      `-> 512): ${((1024 * 1024 * (w512.peakRssMb - w64.peakRssMb)) / 448).toFixed(0)} ` +
      `bytes. One run each.`,
    '',
    `The whole profile took ${minutes.toFixed(1)} min.`,
  ];
}

async function main(): Promise<void> {
  const ref = positionals[0];
  const h = await openHarness('profile');
  let lines: string[] = [];
  let figures: Profile | undefined;
  try {
    const side = ref === undefined ? await thisCheckout() : await refWorktree(ref, h.log);
    figures = await measureAll(side, h);
    lines = render(side, figures, h.minutes());
  } finally {
    // The .cpuprofile and .heapsnapshot files stay in .bench/profile for reading (Chrome DevTools opens them).
    await h.close(true);
  }
  console.log(lines.join('\n'));
  mkdirSync('bench/results', { recursive: true });
  const name = ref === undefined ? 'profile' : `profile-${ref.replace(/[^\w.-]/g, '_')}`;
  writeFileSync(`bench/results/${name}.md`, `${lines.join('\n')}\n`);
  writeFileSync(
    `bench/results/${name}.json`,
    JSON.stringify({ date: new Date().toISOString(), tasks: N, ...figures }, null, 2),
  );
}

await main();
