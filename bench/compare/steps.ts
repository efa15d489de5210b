// The steps every comparison and profile is made of, for one side: a run's files, a migrated and seeded template
// database, fetching a topic to the end, and a `work` run from a copy of a filled spool (bench:compare and
// bench:profile both time this one).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { failedMessage, runCli, startCli, type CliProcess, type Exit } from './cli-process.js';
import {
  committed,
  copyDatabase,
  settle,
  counterDelta,
  databaseUrl,
  deleteTopic,
  PIPELINE,
  recreateDatabase,
  resultCount,
  resultSpan,
  seedSource,
  serverCounters,
  suffix,
  writeConfig,
  type Counters,
  type Fixture,
  type StageSpec,
} from './fixture.js';
import type { Side } from './worktree.js';

export interface Measure {
  tasks: number;
  /** Steady-state tasks per second. */
  rate: number;
  /** First command started to the last process's exit (e2e: to the last result seen). */
  wallSeconds: number;
  /** Highest peak RSS of the measured processes. */
  peakRssMb: number;
  /** CPU of the measured sluice processes, all together. */
  cpuSeconds: number;
  counters: Counters;
}

export interface RunContext {
  fixture: Fixture;
  /** Fires when the harness is interrupted: loops stop waiting. */
  signal: AbortSignal;
  /** A folder for runs' configs, spools and logs. */
  dir: string;
  log: (line: string) => void;
}

export interface Template {
  db: string;
  /** The template's own folder (under the harness's, removed with it). */
  dir?: string;
  spoolDir?: string;
  topic?: string;
}

export type RunFiles = ReturnType<typeof runFiles>;

/** The database a measured run works in (a fresh copy of its template each time). */
export const runDb = (side: Side, ctx: RunContext): string => `${ctx.fixture.tag}_${side.label}_run`;

/** Tasks per second over a span; a span too short to measure is a failed run, not an infinite rate. */
export function rateOver(tasks: number, seconds: number): number {
  if (!(seconds > 0) || tasks < 2)
    throw new Error(`a run of ${tasks} task(s) over ${seconds} s is too short to measure`);
  return tasks / seconds;
}

/** One run's folder, config file and the settings every command of it shares. */
export interface RunFilesOptions {
  topic?: string;
  holdAll?: boolean;
  maxInFlight?: number;
}

export function runFiles(
  side: Side,
  ctx: RunContext,
  db: string,
  stage: StageSpec,
  name: string,
  o: RunFilesOptions = {},
) {
  const topic = o.topic ?? `${ctx.fixture.names}-${suffix()}`;
  const dir = join(ctx.dir, `${side.label}-${name}-${suffix()}`);
  mkdirSync(dir, { recursive: true });
  const spoolDir = join(dir, 'spool');
  const config = join(dir, 'sluice.config.mjs');
  const url = databaseUrl(ctx.fixture, db);
  const groupId = `${ctx.fixture.names}-${suffix()}`;
  writeConfig(config, {
    databaseUrl: url,
    brokers: ctx.fixture.brokers,
    spoolDir,
    topic,
    groupId,
    stage,
    holdAll: o.holdAll,
    maxInFlight: o.maxInFlight,
  });
  const opts = (cmd: string, nodeFlags: string[] = []) => ({
    config,
    databaseUrl: url,
    brokers: ctx.fixture.brokers,
    logFile: join(dir, `${cmd}.log`),
    nodeFlags,
  });
  return { dir, spoolDir, config, topic, url, opts, groupId };
}

/** A database migrated by the side's own CLI and holding the source rows. */
export async function baseTemplate(
  side: Side,
  ctx: RunContext,
  name: string,
  n: number,
  stage: StageSpec,
  holdAll = false,
): Promise<{ db: string; files: RunFiles }> {
  const db = `${ctx.fixture.tag}_${side.label}_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;
  await recreateDatabase(ctx.fixture, db);
  const files = runFiles(side, ctx, db, stage, `${name}-template`, { holdAll });
  await runCli(side, ['migrate'], files.opts('migrate'));
  await seedSource(ctx.fixture, db, n);
  return { db, files };
}

export async function stop(p: CliProcess): Promise<Exit> {
  p.signal('SIGTERM');
  return p.exited;
}

/**
 * The fetcher's steady rate from its spool: every segment's name starts with the millisecond it was written
 * (layout.ts, the same on every version so far) and holds its item count. Items after the first write, over
 * the time from the first write to the last: what kafkajs's own "first batch to last message" measures, free of
 * the one-second grain of committed offsets.
 */
export function spoolSpan(spoolDir: string): { items: number; seconds: number } {
  const segs = readdirSync(join(spoolDir, PIPELINE, 'ready')).flatMap((name) => {
    const m = /^(\d{13})\d{6}-p\d+-o\d+-n(\d+)-/.exec(name);
    return m === null ? [] : [{ at: Number(m[1]), count: Number(m[2]) }];
  });
  if (segs.length === 0) return { items: 0, seconds: 0 };
  const first = Math.min(...segs.map((s) => s.at));
  const last = Math.max(...segs.map((s) => s.at));
  return { items: segs.filter((s) => s.at > first).reduce((a, s) => a + s.count, 0), seconds: (last - first) / 1000 };
}

/** Starts the side's fetcher and waits until the group has committed `n` offsets; returns when they were seen. */
export async function fetchAll(
  side: Side,
  ctx: RunContext,
  files: RunFiles,
  n: number,
): Promise<{ first: number; firstCount: number; last: number; exit: Exit }> {
  const fetcher = startCli(side, ['fetch', '--pipeline', PIPELINE], files.opts('fetch'));
  let first = 0;
  let firstCount = 0;
  const deadline = performance.now() + 600_000;
  try {
    for (;;) {
      const c = await committed(ctx.fixture, files.groupId, files.topic).catch(() => 0);
      const now = performance.now();
      if (c > 0 && first === 0) [first, firstCount] = [now, c];
      if (c >= n) return { first, firstCount, last: now, exit: await stop(fetcher) };
      if (fetcher.child.exitCode !== null)
        throw new Error(
          `${side.label}: fetch exited ${fetcher.child.exitCode} at ${c} of ${n}; see ${files.opts('fetch').logFile}`,
        );
      if (now > deadline || ctx.signal.aborted)
        throw new Error(
          `${side.label}: fetch committed ${c} of ${n} (${ctx.signal.aborted ? 'interrupted' : 'in 10 minutes'})`,
        );
      await sleep(50);
    }
  } finally {
    if (fetcher.child.exitCode === null) fetcher.signal('SIGKILL');
  }
}

/**
 * A measured run's start, the same for every benchmark: a fresh copy of the template's database (and spool),
 * the run's files, InnoDB settled, and the server's counters read.
 */
export async function freshRun(
  side: Side,
  ctx: RunContext,
  t: Template,
  stage: StageSpec,
  name: string,
  o: RunFilesOptions = {},
): Promise<{ db: string; files: RunFiles; before: Counters }> {
  const db = runDb(side, ctx);
  await copyDatabase(ctx.fixture, t.db, db);
  const files = runFiles(side, ctx, db, stage, name, o);
  if (t.spoolDir !== undefined) {
    cpSync(t.spoolDir, files.spoolDir, { recursive: true });
    // The copy's page cache goes to disk now, not during the run.
    execFileSync('sync');
  }
  await settle(ctx.fixture, ctx.signal);
  return { db, files, before: await serverCounters(ctx.fixture) };
}

/** A template for `work`: n tasks produced and fetched by the side itself into a spool that runs then copy. */
export async function prepareWork(
  side: Side,
  ctx: RunContext,
  name: string,
  stage: StageSpec,
  n: number,
): Promise<Template> {
  const { db, files } = await baseTemplate(side, ctx, `work_${name}`, n, stage, true);
  await runCli(side, ['produce', '--pipeline', PIPELINE], files.opts('produce'));
  await fetchAll(side, ctx, files, n);
  await deleteTopic(ctx.fixture, files.topic);
  return { db, spoolDir: files.spoolDir, dir: files.dir };
}

export interface WorkRunOptions {
  /** Flags for node itself (--cpu-prof, ...). */
  nodeFlags?: string[];
  /** Leave the run's folder (the default removes it). */
  keep?: boolean;
  maxInFlight?: number;
  /** Called every 200 ms while the worker runs, with the results written so far. */
  watch?: (results: number, worker: CliProcess) => void;
}

/**
 * `work --exit-when-idle` from a copy of the template; `keep` leaves the run's folder (profiles are written there).
 */
export async function runWork(
  side: Side,
  ctx: RunContext,
  t: Template,
  stage: StageSpec,
  name: string,
  n: number,
  o: WorkRunOptions = {},
): Promise<Measure & { dir: string }> {
  const { db, files, before } = await freshRun(side, ctx, t, stage, name, { maxInFlight: o.maxInFlight });
  const t0 = performance.now();
  const worker = startCli(side, ['work', '--pipeline', PIPELINE, '--exit-when-idle'], files.opts('work', o.nodeFlags));
  while (o.watch !== undefined && worker.child.exitCode === null && !ctx.signal.aborted) {
    o.watch(await resultCount(ctx.fixture, db), worker);
    await sleep(200);
  }
  const exit = await worker.exited;
  if (exit.code !== 0) throw new Error(failedMessage(side, 'work', exit));
  const wallSeconds = (performance.now() - t0) / 1000;
  const counters = counterDelta(before, await serverCounters(ctx.fixture));
  const s = await resultSpan(ctx.fixture, db);
  if (s.count !== n) throw new Error(`${side.label}: work left ${s.count} of ${n} results`);
  if (o.keep !== true) rmSync(files.dir, { recursive: true, force: true });
  return {
    tasks: n,
    rate: rateOver(s.count - 1, s.seconds),
    wallSeconds,
    peakRssMb: exit.peakRssMb,
    cpuSeconds: exit.cpuSeconds,
    counters,
    dir: files.dir,
  };
}
