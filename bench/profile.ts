// npm run bench:profile [-- <git-ref>] [--tasks 100000] — where this checkout's worker (or a ref's, from its
// bench:compare worktree) spends its time and memory, by the harness of bench:compare (bench/compare/), on the
// no-op and the 20 ms stage:
//   cpu     `work` under node --cpu-prof: CPU per task by where the code lives and by sluice feature
//   heap    two heap snapshots of one no-op run (at 1/4 and 3/4 of its tasks): what the heap keeps per task seen
//   rss     peak RSS of no-op runs of n/2 and 2n tasks: memory per task seen from outside; 20 ms stage at
//           maxInFlight 64 and 512: memory per task in flight
//   db      the server's counters per task (statements, rows, fsyncs, CPU)
// Prints Markdown (docs/performance.md quotes it) and writes bench/results/profile.md and .json.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { openFixture, dropDatabase, type StageSpec } from './compare/fixture.js';
import { NOOP, WAIT20 } from './compare/scenarios.js';
import { prepareWork, runWork, type Measure, type RunContext, type Template } from './compare/steps.js';
import { refWorktree, thisCheckout, type Side } from './compare/worktree.js';
import { analyse, type CpuBreakdown } from './profile/cpu-profile.js';
import { growth, heapByKind, total } from './profile/heap-snapshot.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { tasks: { type: 'string' } } });
const N = Number(values.tasks ?? process.env.BENCH_PROFILE_TASKS ?? 100_000);
const WAIT_N = Math.max(16_000, Math.round(N / 3));

const us = (ms: number, tasks: number): string => ((1000 * ms) / tasks).toFixed(1);

function cpuTable(title: string, b: CpuBreakdown, m: Measure): string[] {
  const busy = b.busyMs;
  return [
    `#### ${title}: ${m.tasks.toLocaleString('en-US')} tasks at ${Math.round(m.rate)}/s under the profiler; ${us(busy, m.tasks)} µs of CPU per task on the main thread (idle ${(b.idleMs / 1000).toFixed(1)} s of ${((busy + b.idleMs) / 1000).toFixed(1)} s)`,
    '',
    '| where (self time) | µs per task | share |',
    '| --- | ---: | ---: |',
    ...b.byPlace.slice(0, 14).map((p) => `| ${p.place} | ${us(p.ms, m.tasks)} | ${Math.round((100 * p.ms) / busy)}% |`),
    '',
    '| charged to (the nearest sluice feature on the stack) | µs per task | share |',
    '| --- | ---: | ---: |',
    ...b.byFeature.filter((f) => f.ms / m.tasks >= 0.0001).slice(0, 18).map((f) => `| ${f.feature} | ${us(f.ms, m.tasks)} | ${Math.round((100 * f.ms) / busy)}% |`),
    '',
    '| hottest functions (self) | µs per task |',
    '| --- | ---: |',
    ...b.topFunctions.slice(0, 10).map((f) => `| \`${f.fn}\` | ${us(f.ms, m.tasks)} |`),
    '',
  ];
}

async function cpuRun(side: Side, ctx: RunContext, t: Template, stage: StageSpec, name: string, n: number): Promise<{ b: CpuBreakdown; m: Measure }> {
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
  const files = readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot')).sort();
  if (files.length < 2) return [`(heap: only ${files.length} snapshot(s) were written; the run was too short)`];
  const [a, b] = [heapByKind(join(dir, files[0]!)), heapByKind(join(dir, files[1]!))];
  const seen = taken[1]! - taken[0]!;
  return [
    `#### Heap kept per task seen (no-op): snapshots after ${taken[0]!.toLocaleString('en-US')} and ${taken[1]!.toLocaleString('en-US')} results; live heap ${(total(a) / 2 ** 20).toFixed(1)} MB -> ${(total(b) / 2 ** 20).toFixed(1)} MB = ${((total(b) - total(a)) / seen).toFixed(0)} bytes per task seen`,
    '',
    '| kind of object (V8 type and constructor) | bytes per task seen |',
    '| --- | ---: |',
    ...growth(a, b, seen).map((g) => `| ${g.kind} | ${g.bytesPerUnit.toFixed(1)} |`),
    '',
  ];
}

async function main(): Promise<void> {
  const started = performance.now();
  const log = (line: string): void => console.error(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}`);
  const ref = positionals[0];
  const side = ref === undefined ? await thisCheckout() : await refWorktree(ref, log);
  const fixture = await openFixture(process.env.BENCH_DATABASE_SERVER_URL ?? 'mysql://root@127.0.0.1:3306/mysql', process.env.SLUICE_KAFKA_BROKERS ?? '127.0.0.1:9092');
  const ctx: RunContext = { fixture, dir: resolve('.bench/profile', side.label), log };
  rmSync(ctx.dir, { recursive: true, force: true });
  const templates: Template[] = [];
  const lines: string[] = [];
  const figures: Record<string, unknown> = {};
  try {
    log(`preparing ${N} no-op tasks and ${WAIT_N} 20 ms tasks (produce + fetch by ${side.describe})`);
    const noop = await prepareWork(side, ctx, 'noop', NOOP, N);
    const wait = await prepareWork(side, ctx, 'wait', WAIT20, WAIT_N);
    const half = await prepareWork(side, ctx, 'half', NOOP, N / 2);
    const double = await prepareWork(side, ctx, 'double', NOOP, 2 * N);
    templates.push(noop, wait, half, double);

    log('plain no-op run (no profiler), with the server\'s counters');
    const plain = await runWork(side, ctx, noop, NOOP, 'plain', N);
    log('cpu profiles');
    const cpuNoop = await cpuRun(side, ctx, noop, NOOP, 'noop', N);
    const cpuWait = await cpuRun(side, ctx, wait, WAIT20, 'wait', WAIT_N);
    log('heap snapshots');
    const heap = await heapRun(side, ctx, noop, N);
    log('peak RSS by tasks seen and in flight');
    const rHalf = await runWork(side, ctx, half, NOOP, 'half', N / 2);
    const rDouble = await runWork(side, ctx, double, NOOP, 'double', 2 * N);
    const w64 = await runWork(side, ctx, wait, { ...WAIT20, concurrency: 64 }, 'wait64', WAIT_N, { maxInFlight: 64 });
    const w512 = await runWork(side, ctx, wait, { ...WAIT20, concurrency: 512 }, 'wait512', WAIT_N, { maxInFlight: 512 });
    const c = plain.counters;
    const per = (x: number): string => (x / N).toFixed(3);
    lines.push(
      `### bench:profile (${new Date().toISOString().slice(0, 16)}Z, ${side.describe}, ${cpus().length} cores, node ${process.version})`,
      '',
      `Plain no-op run of ${N.toLocaleString('en-US')} tasks: ${Math.round(plain.rate)}/s steady, peak RSS ${plain.peakRssMb} MB, ${((1e6 * plain.cpuSeconds) / N).toFixed(0)} µs CPU per task in the worker process (all threads), ${((1e6 * c.dbCpuSeconds) / N).toFixed(0)} µs in the database server.`,
      `Server counters per task: ${per(c.Questions)} statements (${per(c.Com_select)} SELECT, ${per(c.Com_insert)} INSERT, ${per(c.Com_commit)} COMMIT), ${per(c.Rows_read)} rows read, ${per(c.Handler_write + c.Handler_update)} rows written, ${per(c.Innodb_data_fsyncs)} fsyncs, ${(c.Bytes_received / N).toFixed(0)} bytes sent to the server.`,
      '',
      ...cpuTable('CPU, no-op stage', cpuNoop.b, cpuNoop.m),
      ...cpuTable('CPU, one stage awaiting 20 ms, concurrency 64', cpuWait.b, cpuWait.m),
      ...heap,
      '#### Peak RSS',
      '',
      '| run | tasks | peak RSS MB |',
      '| --- | ---: | ---: |',
      `| no-op | ${(N / 2).toLocaleString('en-US')} | ${rHalf.peakRssMb} |`,
      `| no-op | ${N.toLocaleString('en-US')} | ${plain.peakRssMb} |`,
      `| no-op | ${(2 * N).toLocaleString('en-US')} | ${rDouble.peakRssMb} |`,
      `| 20 ms stage, concurrency = maxInFlight = 64 | ${WAIT_N.toLocaleString('en-US')} | ${w64.peakRssMb} |`,
      `| 20 ms stage, concurrency = maxInFlight = 512 | ${WAIT_N.toLocaleString('en-US')} | ${w512.peakRssMb} |`,
      '',
      `Per task seen (no-op, ${(N / 2).toLocaleString('en-US')} -> ${(2 * N).toLocaleString('en-US')}): ${((1024 * 1024 * (rDouble.peakRssMb - rHalf.peakRssMb)) / (1.5 * N)).toFixed(0)} bytes of peak RSS. Per task in flight (64 -> 512): ${((1024 * 1024 * (w512.peakRssMb - w64.peakRssMb)) / 448).toFixed(0)} bytes.`,
      '',
      `The whole profile took ${((performance.now() - started) / 60_000).toFixed(1)} min.`,
    );
    Object.assign(figures, { plain, cpuNoop, cpuWait, rss: { half: rHalf, double: rDouble, w64, w512 } });
  } finally {
    for (const t of templates) await dropDatabase(fixture, t.db);
    await dropDatabase(fixture, `sluice_cmp_${side.label}_run`);
    await fixture.close();
  }
  console.log(lines.join('\n'));
  mkdirSync('bench/results', { recursive: true });
  const name = ref === undefined ? 'profile' : `profile-${ref.replace(/[^\w.-]/g, '_')}`;
  writeFileSync(`bench/results/${name}.md`, `${lines.join('\n')}\n`);
  writeFileSync(`bench/results/${name}.json`, JSON.stringify({ date: new Date().toISOString(), tasks: N, ...figures }, null, 2));
}

await main();
