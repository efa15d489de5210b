// Shared by the benchmark orchestrators: each variant runs in a child process and prints one JSON line.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';

const run = promisify(execFile);

/** Runs per variant where noted: on 2 shared cores single runs vary by +-20%; the median is reported. */
export const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);

export interface Result {
  mode: string;
  tasks: number;
  seconds: number;
  rate: number;
  peakRssMb: number;
  /** Every run's rate, when the result is a median. */
  runs?: number[];
  [k: string]: unknown;
}

/** Runs `script` with `args` in its own process and returns the JSON line it printed last. */
export async function variant(script: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Result> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', script, ...args], { env, maxBuffer: 1 << 20 });
  const r = JSON.parse(stdout.trim().split('\n').pop()!) as Result;
  console.error(
    `  ${args.slice(0, 3).join(' ')}: ${r.tasks} in ${r.seconds.toFixed(2)} s = ${Math.round(r.rate)}/s, ` +
      `peak RSS ${r.peakRssMb} MB`,
  );
  return r;
}

/** The median-rate run of `runs`, with the highest peak RSS of them all; `before` runs ahead of each. */
export async function median(
  runs: number,
  once: () => Promise<Result>,
  before: () => Promise<void> | void = () => {},
): Promise<Result> {
  const results: Result[] = [];
  for (let i = 0; i < runs; i++) {
    await before();
    results.push(await once());
  }
  results.sort((x, y) => x.rate - y.rate);
  return {
    ...results[Math.floor(results.length / 2)]!,
    peakRssMb: Math.max(...results.map((r) => r.peakRssMb)),
    runs: results.map((r) => Math.round(r.rate)),
  };
}

export interface Check {
  target: string;
  show: string;
  pass: boolean;
}

/**
 * Prints the Markdown report of a benchmark and writes it, with the raw numbers, to
 * bench/results/<name>.md and .json.
 */
export function report(name: string, note: string, unit: string, rows: Array<[string, Result]>, checks: Check[]): void {
  const md: string[] = [
    `### ${name} (${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores, node ${process.version})`,
    '',
    note,
    '',
    `| variant | ${unit} | seconds | ${unit}/s | peak RSS MB |`,
    '| --- | ---: | ---: | ---: | ---: |',
    ...rows.map(
      ([label, r]) =>
        `| ${label} | ${r.tasks} | ${r.seconds.toFixed(2)} | ` +
        `${Math.round(r.rate)}${r.runs ? ` [${r.runs.join(', ')}]` : ''} | ` +
        `${r.peakRssMb} |`,
    ),
  ];
  writeResults(name, md, checks, { rows: rows.map(([label, r]) => ({ name: label, ...r })) });
}

/**
 * Prints a benchmark's report (its lines, then the targets table) and writes it to bench/results/<name>.md, the
 * figures to .json.
 */
export function writeResults(name: string, lines: string[], checks: Check[], figures: Record<string, unknown>): void {
  const md = [
    ...lines,
    '',
    '| target | result | met |',
    '| --- | --- | --- |',
    ...checks.map((c) => `| ${c.target} | ${c.show} | ${c.pass ? 'yes' : 'NO'} |`),
  ].join('\n');
  console.log(md);
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(`bench/results/${name}.md`, `${md}\n`);
  writeFileSync(
    `bench/results/${name}.json`,
    JSON.stringify({ date: new Date().toISOString(), ...figures, checks }, null, 2),
  );
}

/**
 * BullMQ is only needed by bench:work and bench:compare, and with it in package.json this machine's npm
 * writes a lockfile its own `npm ci` rejects (msgpackr-extract's optional platform packages), so it is
 * installed on demand.
 */
export async function ensureBullmq(): Promise<void> {
  // Looked for on disk: a failed import.meta.resolve is remembered by the process, so it would install each time.
  if (existsSync(join(import.meta.dirname, '..', 'node_modules', 'bullmq', 'package.json'))) return;
  console.error('  installing bullmq@5 for the comparison (npm install --no-save)');
  await run('npm', ['install', '--no-save', '--no-audit', '--no-fund', 'bullmq@5'], { maxBuffer: 1 << 24 });
}
