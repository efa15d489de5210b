// npm run bench:compare -- <git-ref> [work e2e produce fetch] [--rounds 2] [--runs 3] [--installed]
// Measures this checkout against any commit in one sitting: the ref is checked out into a worktree of its own
// (installed once, kept under .bench/worktrees), then each chosen benchmark's variants run alternately
// ref / main / ref / main ..., `runs` times per side per round, for `rounds` rounds. Both sides are driven
// through their own command line by one harness (bench/compare/), so a ref without today's benchmark code is
// measured the same way. Prints the table and writes it to bench/results/compare.md (figures in .json).
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { openHarness, type Harness } from './compare/harness.js';
import { RAWS } from './compare/raw.js';
import { BENCHES, type Measure, type Template, type Variant } from './compare/scenarios.js';
import { renderTable, type Runs } from './compare/table.js';
import { refWorktree, thisCheckout, type Side } from './compare/worktree.js';

const USAGE =
  'usage: npm run bench:compare -- <git-ref> [work e2e produce fetch] ' +
  '[--rounds N (>= 2)] [--runs N (>= 1)] [--installed]';

function args(): { ref: string; benches: string[]; rounds: number; runs: number; installed: boolean } {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { rounds: { type: 'string' }, runs: { type: 'string' }, installed: { type: 'boolean' } },
  });
  const [ref, ...benches] = positionals;
  const unknown = benches.filter((b) => BENCHES[b] === undefined);
  const rounds = Number(values.rounds ?? process.env.BENCH_COMPARE_ROUNDS ?? 2);
  const runs = Number(values.runs ?? process.env.BENCH_COMPARE_RUNS ?? 3);
  if (
    ref === undefined ||
    unknown.length > 0 ||
    !Number.isInteger(rounds) ||
    rounds < 2 ||
    !Number.isInteger(runs) ||
    runs < 1
  ) {
    console.error(
      unknown.length > 0
        ? `bench:compare: unknown benchmark(s) ${unknown.join(', ')} (choose from ${Object.keys(BENCHES).join(', ')})`
        : USAGE,
    );
    process.exit(2);
  }
  return {
    ref,
    benches: benches.length > 0 ? benches : ['work', 'e2e'],
    rounds,
    runs,
    installed: values.installed === true,
  };
}

/** Every variant's runs, ref and main alternating run by run, the order swapped each round (ABBA). */
async function runAll(h: Harness, a: ReturnType<typeof args>, sides: Side[], variants: Variant[]): Promise<Runs[]> {
  const rawsOf = (v: Variant) => RAWS[`${v.bench} ${v.name}`] ?? RAWS[v.bench] ?? [];
  const results: Runs[] = variants.map((variant) => ({
    variant,
    ref: [],
    main: [],
    failures: [],
    raws: rawsOf(variant).map((raw) => ({ raw, runs: [] })),
  }));
  const key = (s: Side, v: Variant): string => `${s.label}/${v.bench}/${v.name}`;
  const templates = new Map<string, Template>();
  for (const v of variants) {
    for (const s of sides) {
      h.log(`preparing ${key(s, v)} (${v.tasks} tasks)`);
      templates.set(key(s, v), await v.prepare(s, h.ctx));
    }
  }
  for (let round = 1; round <= a.rounds; round++) {
    const order = round % 2 === 1 ? sides : [...sides].reverse();
    for (const [i, v] of variants.entries()) {
      for (let run = 1; run <= a.runs; run++) {
        for (const s of order) {
          if (h.ctx.signal.aborted) return results;
          const tag = `round ${round}/${a.rounds}, ${key(s, v)} run ${run}/${a.runs}`;
          try {
            const m: Measure = await v.run(s, templates.get(key(s, v))!, h.ctx);
            results[i]![s.label as 'ref' | 'main'].push(m);
            h.log(
              `${tag}: ${Math.round(m.rate)}/s steady (${m.wallSeconds.toFixed(1)} ` +
                `s), ` +
                `peak RSS ${m.peakRssMb} MB, ${(m.counters.Questions / m.tasks).toFixed(3)} ` +
                `statements/task`,
            );
          } catch (err) {
            const msg = err instanceof Error ? err.message : String(err);
            results[i]!.failures.push(`${tag}: ${msg.split('\n')[0]}`);
            h.log(`${tag}: FAILED ${msg}`);
          }
        }
      }
      // The limits once per round, between the sides' runs, from main's template (the same data as ref's).
      for (const r of results[i]!.raws) {
        if (h.ctx.signal.aborted) return results;
        const tag = `round ${round}/${a.rounds}, ${v.bench}/${v.name} against ${r.raw.name}`;
        try {
          const m = await r.raw.run(templates.get(key(sides[1]!, v))!, h.ctx, v.tasks);
          r.runs.push(m);
          h.log(`${tag}: ${Math.round(m.rate)}/s, peak RSS ${m.peakRssMb} MB`);
        } catch (err) {
          const msg = err instanceof Error ? err.message : String(err);
          results[i]!.failures.push(`${tag}: ${msg.split('\n')[0]}`);
          h.log(`${tag}: FAILED ${msg}`);
        }
      }
    }
  }
  return results;
}

async function main(): Promise<void> {
  const a = args();
  const h = await openHarness('runs');
  let results: Runs[] = [];
  let ref: Side;
  let here: Side;
  try {
    ref = await refWorktree(a.ref, h.log, a.installed);
    here = await thisCheckout(a.installed);
    const variants = a.benches.flatMap((b) => BENCHES[b]!);
    h.log(
      `comparing ${here.describe} with ${ref.describe}: ` +
        `${variants.map((v) => `${v.bench} ${v.name}`).join(', ')}; ${a.rounds} ` +
        `rounds of ${a.runs} runs per side`,
    );
    results = await runAll(h, a, [ref, here], variants);
  } finally {
    await h.close(results.some((r) => r.failures.length > 0));
  }
  if (h.ctx.signal.aborted) return;
  const meta = [
    `Each side ` +
      `runs as ` +
      `${a.installed ? 'its package bin does (--installed)' : 'src/cli.ts through tsx'}: ref ` +
      `${ref!.how}, main ${here!.how}.`,
    `${a.rounds} rounds × ${a.runs} runs per side per variant, alternating ref and main run by run (the ` +
      `order swapped each round); ${cpus().length} ` +
      `cores, node ${process.version}, ${new Date().toISOString().slice(0, 16)}Z; ` +
      `the whole compare took ${h.minutes().toFixed(1)} min.`,
    'Rates are steady-state: tasks between the first and the last result ' +
      '(work, e2e), dispatch record (produce) or spool segment written (fetch) ' +
      "of a run. Peak RSS is the measured sluice process's own (the largest of " +
      "an e2e run's four), from GNU time.",
  ];
  const lines = [
    `### bench:compare ${a.benches.join(' ')} against ${a.ref}`,
    '',
    ...renderTable(results, { ref: ref.describe, main: here.describe }, meta),
  ];
  console.log(lines.join('\n'));
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/compare.md', `${lines.join('\n')}\n`);
  const figures = results.map((r) => ({
    bench: r.variant.bench,
    variant: r.variant.name,
    tasks: r.variant.tasks,
    ref: r.ref,
    main: r.main,
    raws: r.raws.map((x) => ({ name: x.raw.name, runs: x.runs })),
    failures: r.failures,
  }));
  writeFileSync(
    'bench/results/compare.json',
    JSON.stringify(
      {
        date: new Date().toISOString(),
        ref: ref.describe,
        main: here.describe,
        minutes: h.minutes(),
        results: figures,
      },
      null,
      2,
    ),
  );
  // A failed run's config and logs were kept (.bench/runs) for reading.
  if (results.some((r) => r.failures.length > 0)) process.exitCode = 1;
}

await main();
