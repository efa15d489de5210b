// npm run bench [-- produce fetch work e2e limits scale recompute] — runs the benchmarks one after another, then
// writes bench/RESULTS.md: the machine, the versions, the date, and each benchmark's table. A benchmark that fails
// is reported in the file and in the exit code; the others still run. One left out this time keeps the
// table of its last run (bench/results/<name>.md, dated in its heading).
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { promisify } from 'node:util';
import mysql, { type RowDataPacket } from 'mysql2/promise';

const ALL = ['produce', 'fetch', 'work', 'e2e', 'limits', 'scale', 'recompute'] as const;
const chosen = process.argv.slice(2).length > 0 ? process.argv.slice(2) : [...ALL];
const unknown = chosen.filter((b) => !(ALL as readonly string[]).includes(b));
if (unknown.length > 0) {
  console.error(`bench: unknown benchmark(s) ${unknown.join(', ')} (choose from ${ALL.join(', ')})`);
  process.exit(2);
}

function runBench(name: string): Promise<{ code: number | null; seconds: number }> {
  const t0 = performance.now();
  console.error(`\n== bench:${name}`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', `bench/${name}.ts`], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.on('exit', (code) => resolve({ code, seconds: (performance.now() - t0) / 1000 }));
  });
}

async function versions(): Promise<string[]> {
  const lines = [`- node ${process.version}`];
  try {
    const db = await mysql.createConnection(
      process.env.BENCH_DATABASE_SERVER_URL ?? 'mysql://root@127.0.0.1:3306/mysql',
    );
    const [[v]] = await db.query<RowDataPacket[]>('SELECT VERSION() AS v');
    lines.push(`- database ${String(v?.v)}`);
    await db.end();
  } catch {
    lines.push('- database: unreachable');
  }
  const kafka = /<kafka.version>([^<]+)</.exec(readFileSync('scripts/kafka/pom.xml', 'utf8'))?.[1];
  lines.push(`- Apache Kafka ${kafka ?? '(see scripts/kafka/pom.xml)'} (single KRaft node, scripts/services.sh)`);
  for (const pkg of ['kafkajs', 'mysql2', 'p-limit']) {
    const file = `node_modules/${pkg}/package.json`;
    if (existsSync(file))
      lines.push(`- ${pkg} ${(JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version}`);
  }
  const java = await promisify(execFile)('java', ['-version']).then(
    (r) => r.stderr.split('\n')[0],
    () => 'not found',
  );
  lines.push(`- java: ${java}`);
  return lines;
}

const outcomes: Array<{ name: string; code: number | null; seconds: number }> = [];
for (const name of chosen) outcomes.push({ name, ...(await runBench(name)) });

const cpu = cpus();
const md = [
  '# Benchmark results',
  '',
  `Written by \`npm run bench\` on ${new Date().toISOString()}.`,
  '',
  `Machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown CPU'}), ${Math.round(totalmem() / 2 ** 30)} ` +
    `GiB, Linux ${release()}; MariaDB, Kafka and the benchmark share the ` +
    `same cores.`,
  '',
  ...(await versions()),
  '',
  ...ALL.flatMap((name) => {
    const file = `bench/results/${name}.md`;
    const run = outcomes.find((o) => o.name === name);
    if (run === undefined)
      return existsSync(file)
        ? [readFileSync(file, 'utf8').trimEnd(), '', '(not run this time: the table of its last run)', '']
        : [];
    if (run.code !== 0)
      return [
        `### ${name}`,
        '',
        `FAILED (exit ${String(run.code)} after ${run.seconds.toFixed(0)} s); see the console output.`,
        '',
      ];
    return [readFileSync(file, 'utf8').trimEnd(), '', `(${run.seconds.toFixed(0)} s including set-up)`, ''];
  }),
  // bench:compare is run by hand (against a ref of one's choosing); its latest table is kept with the others.
  ...(existsSync('bench/results/compare.md')
    ? ['## The latest bench:compare', '', readFileSync('bench/results/compare.md', 'utf8').trimEnd(), '']
    : []),
].join('\n');
writeFileSync('bench/RESULTS.md', md);
console.error(
  `\nbench: wrote bench/RESULTS.md (${outcomes.map((o) => `${o.name} ${o.code === 0 ? 'ok' : 'FAILED'}`).join(', ')})`,
);
process.exitCode = outcomes.every((o) => o.code === 0) ? 0 : 1;
