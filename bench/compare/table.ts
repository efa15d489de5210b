// The comparison's table: per variant, each side's median steady-state rate with its spread, main/ref, peak RSS,
// and what the database and the process did per task. Medians of all runs of both rounds.
import type { Raw, RawMeasure } from './raw.js';
import type { Measure, Variant } from './scenarios.js';

export interface Runs {
  variant: Variant;
  ref: Measure[];
  main: Measure[];
  failures: string[];
  /** The limits (or the rival) measured in the same sitting, once per round. */
  raws: Array<{ raw: Raw; runs: RawMeasure[] }>;
}

/** The median of the finite values (a reading that failed is NaN and left out). */
const median = (xs: number[]): number => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const int = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-');
const fixed = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : '-');

/** "8,512/s (4,410-9,390, ±38%)": the median, the lowest and highest run, and half the range over the median. */
function rateCell(ms: Measure[]): string {
  if (ms.length === 0) return 'no run';
  const rates = ms.map((m) => m.rate);
  const med = median(rates);
  const lo = Math.min(...rates);
  const hi = Math.max(...rates);
  return `${int(med)}/s (${int(lo)}-${int(hi)}, ±${med > 0 ? Math.round((50 * (hi - lo)) / med) : '-'}%)`;
}

function rssCell(ms: Measure[]): string {
  return ms.length === 0
    ? '-'
    : `${int(median(ms.map((m) => m.peakRssMb)))} (${int(Math.max(...ms.map((m) => m.peakRssMb)))})`;
}

const perTask = (ms: Measure[], f: (m: Measure) => number): number => median(ms.map((m) => f(m) / m.tasks));

export function renderTable(all: Runs[], sides: { ref: string; main: string }, meta: string[]): string[] {
  const lines = [
    `ref = ${sides.ref}; main = ${sides.main}.`,
    ...meta,
    '',
    '| variant | ref tasks/s (min-max, spread) | main tasks/s (min-max, ' +
      'spread) | main/ref | ref peak RSS MB median (max) | main peak RSS MB ' +
      'median (max) |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of all) {
    const ratio = median(r.main.map((m) => m.rate)) / median(r.ref.map((m) => m.rate));
    const bound =
      r.variant.bound === undefined
        ? ''
        : `; of ` +
          `Little's bound ${int(r.variant.bound)}/s: ref ` +
          `${pct(r.ref, r.variant.bound)}, main ${pct(r.main, r.variant.bound)}`;
    lines.push(
      `| ${r.variant.bench} ${r.variant.name} (${int(r.variant.tasks)} tasks` +
        `${bound}) | ${rateCell(r.ref)} | ${rateCell(r.main)} | **` +
        `${fixed(ratio, 2)}x** | ${rssCell(r.ref)} | ${rssCell(r.main)} |`,
    );
  }
  lines.push(
    '',
    "Per 1,000 tasks (medians of the runs), from the server's global counters " +
      'over each run (statements of every client: the harness adds a few) and ' +
      "the measured processes' own CPU:",
    '',
    '| variant | side | statements | SELECT | INSERT | UPDATE | DELETE | ' +
      'COMMIT | rows read | rows written | fsyncs | KB to server | sluice CPU ' +
      'ms | DB CPU ms |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const r of all) {
    for (const [side, ms] of [
      ['ref', r.ref],
      ['main', r.main],
    ] as const) {
      if (ms.length === 0) continue;
      const k1 = (f: (m: Measure) => number, d = 1): string => fixed(1000 * perTask(ms, f), d);
      const c = (k: keyof Measure['counters']): string => k1((m) => m.counters[k]);
      lines.push(
        `| ${r.variant.bench} ${r.variant.name} | ${side} | ${c('Questions')} | ` +
          `${c('Com_select')} | ${c('Com_insert')} | ${c('Com_update')} | ` +
          `${c('Com_delete')} | ${c('Com_commit')} | ` +
          `${k1((m) => m.counters.Rows_read, 0)} | ` +
          `${k1((m) => m.counters.Handler_write + m.counters.Handler_update, 0)} | ` +
          `${c('Innodb_data_fsyncs')} | ` +
          `${k1((m) => m.counters.Bytes_received / 1024, 0)} | ` +
          `${k1((m) => m.cpuSeconds * 1000, 0)} | ` +
          `${k1((m) => m.counters.dbCpuSeconds * 1000, 0)} |`,
      );
    }
  }
  lines.push(...rawTable(all));
  const failed = all.flatMap((r) => r.failures.map((f) => `- ${r.variant.bench} ${r.variant.name}: ${f}`));
  if (failed.length > 0) lines.push('', 'Runs that failed (left out of the medians):', ...failed);
  return lines;
}

function pct(ms: Measure[], bound: number): string {
  return ms.length === 0 ? '-' : `${Math.round((100 * median(ms.map((m) => m.rate))) / bound)}%`;
}

/**
 * Each side against what the parts do alone (a share of the limit) or against a rival (a multiple of it);
 * where a benchmark has two limits, the slower one is what a side is held against.
 */
function rawTable(all: Runs[]): string[] {
  const withRaws = all.filter((r) => r.raws.some((x) => x.runs.length > 0));
  if (withRaws.length === 0) return [];
  const lines = [
    '',
    'Against the parts alone and the rival, measured in the same sitting ' +
      "(once per round, this checkout's bench code; the median of the rounds):",
    '',
    '| variant | measured against | its tasks/s (runs) | ref | main |',
    '| --- | --- | ---: | ---: | ---: |',
  ];
  for (const r of withRaws) {
    const refRate = median(r.ref.map((m) => m.rate));
    const mainRate = median(r.main.map((m) => m.rate));
    const rated = r.raws
      .filter((x) => x.runs.length > 0)
      .map((x) => ({ ...x, rate: median(x.runs.map((m) => m.rate)) }));
    const show = (kind: Raw['kind'], side: number, rate: number): string =>
      kind === 'limit' ? `${Math.round((100 * side) / rate)}%` : `${fixed(side / rate, 1)}x`;
    for (const x of rated) {
      lines.push(
        `| ${r.variant.bench} ${r.variant.name} | ${x.raw.name} | ` +
          `${int(x.rate)}/s (${x.runs.map((m) => int(m.rate)).join(', ')}) | ` +
          `${show(x.raw.kind, refRate, x.rate)} | ` +
          `${show(x.raw.kind, mainRate, x.rate)} |`,
      );
    }
    const limits = rated.filter((x) => x.raw.kind === 'limit');
    if (limits.length > 1) {
      const slower = limits.reduce((a, b) => (b.rate < a.rate ? b : a));
      lines.push(
        `| ${r.variant.bench} ${r.variant.name} | the ` +
          `slower limit (${slower.raw.name}) | ${int(slower.rate)}/s | **` +
          `${show('limit', refRate, slower.rate)}** | **` +
          `${show('limit', mainRate, slower.rate)}** |`,
      );
    }
  }
  return lines;
}
