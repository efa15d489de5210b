// npm run bench:rss [-- --tasks 100000,1000000] [--runs 2] [--installed] — the no-op worker's peak RSS by tasks
// seen: the same `work --exit-when-idle` run bench:compare times, from spools of each size that this checkout
// produced and fetched itself. The memory target is a bound (<= 256 MB) and a slope (within 10% from 100k to
// 1M tasks): memory is what is in flight plus the key gate's bounded window, never a share of the tasks seen.
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { openHarness } from './compare/harness.js';
import { NOOP } from './compare/scenarios.js';
import { prepareWork, runWork, type Measure } from './compare/steps.js';
import { thisCheckout } from './compare/worktree.js';

const { values } = parseArgs({
  options: { tasks: { type: 'string' }, runs: { type: 'string' }, installed: { type: 'boolean' } },
});
const sizes = (values.tasks ?? '100000,1000000').split(',').map(Number);
const runs = Number(values.runs ?? 2);
if (sizes.some((n) => !Number.isInteger(n) || n < 1000) || !Number.isInteger(runs) || runs < 1) {
  console.error('usage: npm run bench:rss -- [--tasks 100000,1000000] [--runs N] [--installed]');
  process.exit(2);
}

const h = await openHarness('rss');
const rows: Array<{ tasks: number; runs: Measure[] }> = [];
let how = '';
try {
  const side = await thisCheckout(values.installed === true);
  how = `${side.describe}, ${side.how}`;
  for (const n of sizes) {
    h.log(`preparing ${n} no-op tasks`);
    const t = await prepareWork(side, h.ctx, `rss${n}`, NOOP, n);
    const row = { tasks: n, runs: [] as Measure[] };
    for (let i = 0; i < runs && !h.ctx.signal.aborted; i++) {
      const m = await runWork(side, h.ctx, t, NOOP, `rss${n}`, n);
      h.log(`${n} tasks, run ${i + 1}: ${Math.round(m.rate)}/s, peak RSS ${m.peakRssMb} MB`);
      row.runs.push(m);
    }
    rows.push(row);
  }
} finally {
  await h.close();
}
const lines = [
  `### bench:rss (${new Date().toISOString().slice(0, 16)}Z, ${how}, ${cpus().length} cores, node ${process.version})`,
  '',
  '| tasks | peak RSS MB, each run | tasks/s, each run |',
  '| ---: | --- | --- |',
  ...rows.map(
    (r) =>
      `| ${r.tasks.toLocaleString('en-US')} | ` +
      `${r.runs.map((m) => m.peakRssMb).join(', ')} | ` +
      `${r.runs.map((m) => Math.round(m.rate).toLocaleString('en-US')).join(', ')} |`,
  ),
];
if (rows.length >= 2) {
  const max = (r: (typeof rows)[number]): number => Math.max(...r.runs.map((m) => m.peakRssMb));
  const [first, last] = [rows[0]!, rows[rows.length - 1]!];
  lines.push(
    '',
    `Highest peak RSS ${Math.max(...rows.map(max))} ` +
      `MB; from ${first.tasks.toLocaleString('en-US')} to ${last.tasks.toLocaleString('en-US')} ` +
      `tasks the highest ` +
      `grew by ${Math.round((100 * (max(last) - max(first))) / max(first))}%.`,
  );
}
console.log(lines.join('\n'));
writeFileSync('bench/results/rss.md', `${lines.join('\n')}\n`);
