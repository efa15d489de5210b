// The benchmarks bench:compare runs, each as variants that any version of sluice can do from its command line.
// A variant prepares a template once per side (a database, and for `work` a filled spool), then each run starts
// from a copy of it, so that only the measured command's own work is timed.
//   work     no-op stage (100k tasks); a stage awaiting 20 ms at concurrency 64 (64k tasks, Little's bound 3,200/s)
//   e2e      produce + 1 fetch + 2 work processes, no-op stage (200k tasks)
//   produce  publishing every pending row of the source (200k)
//   fetch    spooling a topic that holds 200k tasks
// Throughput is steady-state: tasks between the first and the last timestamp the run left (results' finished_at,
// dispatches' dispatched_at, or the spool's segment names), so start-up and drain are not in it.
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCli, startCli } from './cli-process.js';
import {
  counterDelta,
  deleteTopic,
  dispatchSpan,
  PIPELINE,
  resultCount,
  resultSpan,
  serverCounters,
  type StageSpec,
} from './fixture.js';
import {
  baseTemplate,
  fetchAll,
  freshRun,
  prepareWork,
  rateOver,
  runWork,
  spoolSpan,
  stop,
  type Measure,
  type RunContext,
  type Template,
} from './steps.js';
import type { Side } from './worktree.js';

export type { Measure, RunContext, Template } from './steps.js';

export interface Variant {
  bench: string;
  name: string;
  tasks: number;
  /** Little's bound where the stage waits, for "% of the bound". */
  bound?: number;
  prepare(side: Side, ctx: RunContext): Promise<Template>;
  run(side: Side, t: Template, ctx: RunContext): Promise<Measure>;
}

const env = (n: string, d: number): number => Number(process.env[n] ?? d);
export const NOOP: StageSpec = { name: 'noop', concurrency: 64, waitMs: 0 };
export const WAIT20: StageSpec = { name: 'wait', concurrency: 64, waitMs: 20 };
export const WAIT20_C256: StageSpec = { name: 'wait', concurrency: 256, waitMs: 20 };

function workVariant(name: string, stage: StageSpec, n: number, bound?: number): Variant {
  return {
    bench: 'work',
    name,
    tasks: n,
    bound,
    prepare: (side, ctx) => prepareWork(side, ctx, name, stage, n),
    run: (side, t, ctx) => runWork(side, ctx, t, stage, name, n),
  };
}

const E2E_WORKERS = 2;

const e2e: Variant = {
  bench: 'e2e',
  name: 'noop',
  tasks: env('BENCH_COMPARE_E2E_TASKS', 200_000),
  async prepare(side, ctx) {
    const { db, files } = await baseTemplate(side, ctx, 'e2e', this.tasks, NOOP);
    return { db, dir: files.dir };
  },
  async run(side, t, ctx) {
    const n = this.tasks;
    const { db, files, before } = await freshRun(side, ctx, t, NOOP, 'e2e');
    // Fetcher and workers are up and waiting, as on machines that run all the time; the clock starts with produce.
    const fetcher = startCli(side, ['fetch', '--pipeline', PIPELINE], files.opts('fetch'));
    const workers = Array.from({ length: E2E_WORKERS }, (_, i) =>
      startCli(side, ['work', '--pipeline', PIPELINE], files.opts(`work-${i}`)),
    );
    const all = [fetcher, ...workers];
    try {
      await sleep(4000);
      const t0 = performance.now();
      const producer = startCli(side, ['produce', '--pipeline', PIPELINE], files.opts('produce'));
      all.push(producer);
      for (;;) {
        const c = await resultCount(ctx.fixture, db);
        if (c >= n) break;
        const dead = all.find((p) => p.child.exitCode !== null && p !== producer);
        if (dead !== undefined || (producer.child.exitCode !== null && producer.child.exitCode !== 0))
          throw new Error(`${side.label}: a process of the e2e run exited early; see ${files.dir}`);
        if (performance.now() - t0 > 600_000 || ctx.signal.aborted)
          throw new Error(
            `${side.label}: ${c} of ${n} results (${ctx.signal.aborted ? 'interrupted' : 'after 10 minutes'})`,
          );
        // A count over the results grows with them: asked once a second, it takes little of the CPU the run measures.
        await sleep(1000);
      }
      const wallSeconds = (performance.now() - t0) / 1000;
      const exits = await Promise.all([...all.filter((p) => p !== producer).map(stop), producer.exited]);
      // Whose CPU the run was: fetch, the workers, produce (start-up included), in that order.
      ctx.log(
        `${side.label} e2e CPU ` +
          `seconds: ${exits.map((e) => e.cpuSeconds.toFixed(1)).join(', ')} ` +
          `(fetch, ${E2E_WORKERS} work, produce)`,
      );
      const counters = counterDelta(before, await serverCounters(ctx.fixture));
      const s = await resultSpan(ctx.fixture, db);
      await deleteTopic(ctx.fixture, files.topic);
      if (exits.some((e) => e.code !== 0))
        throw new Error(`${side.label}: exit codes ${exits.map((e) => e.code).join(', ')}; see ${files.dir}`);
      rmSync(files.dir, { recursive: true, force: true });
      return {
        tasks: n,
        rate: rateOver(s.count - 1, s.seconds),
        wallSeconds,
        peakRssMb: Math.max(...exits.map((e) => e.peakRssMb)),
        cpuSeconds: exits.reduce((a, e) => a + e.cpuSeconds, 0),
        counters,
      };
    } finally {
      for (const p of all) if (p.child.exitCode === null) p.signal('SIGKILL');
    }
  },
};

const produce: Variant = {
  bench: 'produce',
  name: 'publish',
  tasks: env('BENCH_COMPARE_PRODUCE_TASKS', 200_000),
  async prepare(side, ctx) {
    const { db, files } = await baseTemplate(side, ctx, 'produce', this.tasks, NOOP);
    return { db, dir: files.dir };
  },
  async run(side, t, ctx) {
    const { db, files, before } = await freshRun(side, ctx, t, NOOP, 'produce');
    const t0 = performance.now();
    const exit = await runCli(side, ['produce', '--pipeline', PIPELINE], files.opts('produce'));
    const wallSeconds = (performance.now() - t0) / 1000;
    const counters = counterDelta(before, await serverCounters(ctx.fixture));
    const s = await dispatchSpan(ctx.fixture, db);
    await deleteTopic(ctx.fixture, files.topic);
    if (s.count !== this.tasks)
      throw new Error(`${side.label}: produce recorded ${s.count} of ${this.tasks} dispatches`);
    rmSync(files.dir, { recursive: true, force: true });
    return {
      tasks: this.tasks,
      rate: rateOver(s.count - 1, s.seconds),
      wallSeconds,
      peakRssMb: exit.peakRssMb,
      cpuSeconds: exit.cpuSeconds,
      counters,
    };
  },
};

const fetch: Variant = {
  bench: 'fetch',
  name: 'spool',
  tasks: env('BENCH_COMPARE_FETCH_TASKS', 200_000),
  async prepare(side, ctx) {
    const { db, files } = await baseTemplate(side, ctx, 'fetch', this.tasks, NOOP, true);
    await runCli(side, ['produce', '--pipeline', PIPELINE], files.opts('produce'));
    return { db, topic: files.topic, dir: files.dir };
  },
  async run(side, t, ctx) {
    const { files, before } = await freshRun(side, ctx, t, NOOP, 'fetch', { topic: t.topic, holdAll: true });
    const r = await fetchAll(side, ctx, files, this.tasks);
    const counters = counterDelta(before, await serverCounters(ctx.fixture));
    if (r.exit.code !== 0) throw new Error(`${side.label}: fetch exited ${r.exit.code} on SIGTERM; see ${r.exit.log}`);
    const span = spoolSpan(files.spoolDir);
    rmSync(files.dir, { recursive: true, force: true });
    const rate = rateOver(span.items, span.seconds);
    return {
      tasks: this.tasks,
      rate,
      wallSeconds: (r.last - r.first) / 1000,
      peakRssMb: r.exit.peakRssMb,
      cpuSeconds: r.exit.cpuSeconds,
      counters,
    };
  },
};

export const BENCHES: Record<string, Variant[]> = {
  work: [
    workVariant('noop', NOOP, env('BENCH_COMPARE_WORK_TASKS', 100_000)),
    workVariant('wait20-c64', WAIT20, env('BENCH_COMPARE_WAIT_TASKS', 64_000), 64 / 0.02),
    workVariant('wait20-c256', WAIT20_C256, env('BENCH_COMPARE_WAIT_TASKS', 64_000), 256 / 0.02),
  ],
  e2e: [e2e],
  produce: [produce],
  fetch: [fetch],
};
