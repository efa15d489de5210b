// npm run bench:compare -- <git-ref> [work e2e produce fetch] [--rounds 2] [--runs 3]
// Measures this checkout against any commit in one sitting: the ref is checked out into a worktree of its own
// (installed once, kept under .bench/worktrees), then each chosen benchmark's variants run alternately
// ref / main / ref / main ..., `runs` times per side per round, for `rounds` rounds. Both sides are driven
// through their own command line by one harness (bench/compare/), so a ref without today's benchmark code is
// measured the same way. Prints the table and writes it to bench/results/compare.md (figures in .json).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { dropDatabase, deleteTopic, openFixture } from './compare/fixture.js';
import { BENCHES, type Measure, type Template, type Variant } from './compare/scenarios.js';
import { renderTable, type Runs } from './compare/table.js';
import { refWorktree, thisCheckout, type Side } from './compare/worktree.js';

const USAGE = 'usage: npm run bench:compare -- <git-ref> [work e2e produce fetch] [--rounds N (>= 2)] [--runs N (>= 1)]';

function args(): { ref: string; benches: string[]; rounds: number; runs: number } {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { rounds: { type: 'string' }, runs: { type: 'string' } } });
  const [ref, ...benches] = positionals;
  const unknown = benches.filter((b) => BENCHES[b] === undefined);
  const rounds = Number(values.rounds ?? process.env.BENCH_COMPARE_ROUNDS ?? 2);
  const runs = Number(values.runs ?? process.env.BENCH_COMPARE_RUNS ?? 3);
  if (ref === undefined || unknown.length > 0 || !Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(runs) || runs < 1) {
    console.error(unknown.length > 0 ? `bench:compare: unknown benchmark(s) ${unknown.join(', ')} (choose from ${Object.keys(BENCHES).join(', ')})` : USAGE);
    process.exit(2);
  }
  return { ref, benches: benches.length > 0 ? benches : ['work', 'e2e'], rounds, runs };
}

async function main(): Promise<void> {
  const a = args();
  const started = performance.now();
  const log = (line: string): void => console.error(`[${((performance.now() - started) / 1000).toFixed(0).padStart(5)} s] ${line}`);
  const ref = await refWorktree(a.ref, log);
  const main = await thisCheckout();
  const fixture = await openFixture(process.env.BENCH_DATABASE_SERVER_URL ?? 'mysql://root@127.0.0.1:3306/mysql', process.env.SLUICE_KAFKA_BROKERS ?? '127.0.0.1:9092');
  const dir = resolve('.bench/runs');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const ctx = { fixture, dir, log };
  const variants: Variant[] = a.benches.flatMap((b) => BENCHES[b]!);
  const sides: Side[] = [ref, main];
  const templates = new Map<string, Template>();
  const key = (s: Side, v: Variant): string => `${s.label}/${v.bench}/${v.name}`;
  const results: Runs[] = variants.map((variant) => ({ variant, ref: [], main: [], failures: [] }));
  log(`comparing ${main.describe} with ${ref.describe}: ${variants.map((v) => `${v.bench} ${v.name}`).join(', ')}; ${a.rounds} rounds of ${a.runs} runs per side`);
  try {
    for (const v of variants) {
      for (const s of sides) {
        log(`preparing ${key(s, v)} (${v.tasks} tasks)`);
        templates.set(key(s, v), await v.prepare(s, ctx));
      }
    }
    for (let round = 1; round <= a.rounds; round++) {
      for (const [i, v] of variants.entries()) {
        for (let run = 1; run <= a.runs; run++) {
          for (const s of sides) {
            const tag = `round ${round}/${a.rounds}, ${key(s, v)} run ${run}/${a.runs}`;
            try {
              const m: Measure = await v.run(s, templates.get(key(s, v))!, ctx);
              results[i]![s.label as 'ref' | 'main'].push(m);
              log(`${tag}: ${Math.round(m.rate)}/s steady (${m.wallSeconds.toFixed(1)} s), peak RSS ${m.peakRssMb} MB, ${(m.counters.Questions / m.tasks).toFixed(2)} statements/task`);
            } catch (err) {
              const msg = err instanceof Error ? err.message : String(err);
              results[i]!.failures.push(`${tag}: ${msg.split('\n')[0]}`);
              log(`${tag}: FAILED ${msg}`);
            }
          }
        }
      }
    }
  } finally {
    for (const t of templates.values()) {
      await dropDatabase(fixture, t.db);
      if (t.topic !== undefined) await deleteTopic(fixture, t.topic);
    }
    for (const s of sides) await dropDatabase(fixture, `sluice_cmp_${s.label}_run`);
    await fixture.close();
  }
  const minutes = (performance.now() - started) / 60_000;
  const meta = [
    `${a.rounds} rounds × ${a.runs} runs per side per variant, alternating ref and main run by run; ${cpus().length} cores, node ${process.version}, ${new Date().toISOString().slice(0, 16)}Z; the whole compare took ${minutes.toFixed(1)} min.`,
    'Rates are steady-state: tasks between the first and the last result (work, e2e), dispatch record (produce) or committed offset (fetch) of a run. Peak RSS is the measured sluice process\'s own (the largest of an e2e run\'s four), from GNU time.',
  ];
  const lines = [`### bench:compare ${a.benches.join(' ')} against ${a.ref}`, '', ...renderTable(results, { ref: ref.describe, main: main.describe }, meta)];
  console.log(lines.join('\n'));
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/compare.md', `${lines.join('\n')}\n`);
  writeFileSync('bench/results/compare.json', JSON.stringify({ date: new Date().toISOString(), ref: ref.describe, main: main.describe, minutes, results: results.map((r) => ({ bench: r.variant.bench, variant: r.variant.name, tasks: r.variant.tasks, ref: r.ref, main: r.main, failures: r.failures })) }, null, 2));
  // A failed run's config and logs are kept for reading.
  if (results.some((r) => r.failures.length > 0)) process.exitCode = 1;
  else rmSync(dir, { recursive: true, force: true });
}

await main();
