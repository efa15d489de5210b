// npm run bench:e2e — the whole job as a user runs it, each part its own process: `produce` publishes
// 200,000 pending tasks (key + ~300-byte payload), one `fetch` spools them, two `work` processes run a
// no-op stage and write the results. Measured from the start of produce to the last result row.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { defaults } from '../src/config/config.js';
import { silentLogger } from '../src/core/logger.js';
import { withDatabase } from '../src/db/database-url.js';
import { migrate } from '../src/db/migrate.js';
import { report, type Result } from './lib.js';

const url = process.env.BENCH_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/sluice_bench_e2e';
const N = Number(process.env.BENCH_E2E_TASKS ?? 200_000);
const WORKERS = Number(process.env.BENCH_E2E_WORKERS ?? 2);
const CLI = new URL('../src/cli.ts', import.meta.url).pathname;
const brokers = process.env.SLUICE_KAFKA_BROKERS ?? '127.0.0.1:9092';

/** Peak RSS of a running child, from /proc (Linux), in MB; 0 where it cannot be read. */
function peakRssMb(child: ChildProcess): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    return m === null ? 0 : Math.round(Number(m[1]) / 1024);
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  console.error(
    `bench:e2e on ${cpus().length} cores, node ${process.version}: ${N} tasks, 1 fetcher, ${WORKERS} workers`,
  );
  const server = await mysql.createConnection(withDatabase(url, 'mysql'));
  await server.query(`DROP DATABASE IF EXISTS \`${new URL(url).pathname.slice(1)}\``);
  await server.end();
  await migrate({ ...defaults.database, url }, silentLogger());
  const db = await mysql.createConnection(url);
  await db.query(
    'CREATE TABLE bench_e2e (id BIGINT PRIMARY KEY, title VARCHAR(100) NOT NULL, body VARCHAR(400) NOT NULL)',
  );
  await db.query(
    `INSERT INTO bench_e2e SELECT seq, CONCAT('Document ', seq), ` +
      `CONCAT(REPEAT('lorem ipsum ', 24), seq) FROM seq_1_to_${N}`,
  );

  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-e2e-'));
  const suffix = randomBytes(4).toString('hex');
  writeFileSync(
    join(dir, 'sluice.config.ts'),
    `export default { fetcher: { groupId: 'bench-e2e-${suffix}' }, ` +
      `spool: { dir: ${JSON.stringify(join(dir, 'spool'))} }, worker: { ` +
      `pollMs: 20 },
  pipelines: { bench_e2e: { topic: ` +
      `'sluice-bench-e2e-${suffix}', partitions: 6, source: { table: ` +
      `'bench_e2e', key: 'id', columns: ` +
      `['title', 'body'] },
    stages: [{ name: 'noop', concurrency: 64, run: async () => null }] } } };\n`,
  );
  const env = {
    ...process.env,
    DATABASE_URL: url,
    SLUICE_KAFKA_BROKERS: brokers,
    SLUICE_CONFIG: join(dir, 'sluice.config.ts'),
    SLUICE_LOG_LEVEL: 'warn',
  };
  const start = (command: string): ChildProcess =>
    spawn(process.execPath, ['--import', 'tsx', CLI, command, '--pipeline', 'bench_e2e'], {
      env,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  const exit = (c: ChildProcess): Promise<number | null> =>
    c.exitCode !== null ? Promise.resolve(c.exitCode) : new Promise((r) => c.once('exit', r));

  // Fetcher and workers wait, started, as on machines that run all the time; the clock starts with produce.
  const fetcher = start('fetch');
  const workers = Array.from({ length: WORKERS }, () => start('work'));
  await new Promise((r) => setTimeout(r, 4000));
  const t0 = performance.now();
  const producer = start('produce');
  let produceSeconds = 0;
  void exit(producer).then(() => (produceSeconds = (performance.now() - t0) / 1000));
  const peaks = { fetch: 0, work: 0, produce: 0 };
  for (;;) {
    peaks.fetch = Math.max(peaks.fetch, peakRssMb(fetcher));
    peaks.work = Math.max(peaks.work, ...workers.map(peakRssMb));
    peaks.produce = Math.max(peaks.produce, peakRssMb(producer));
    const [[row]] = await db.query<RowDataPacket[]>(
      "SELECT COUNT(*) AS n FROM sluice_results WHERE pipeline = 'bench_e2e'",
    );
    if (Number(row?.n) >= N) break;
    if (performance.now() - t0 > 600_000) throw new Error(`only ${String(row?.n)} of ${N} results after 10 minutes`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const seconds = (performance.now() - t0) / 1000;
  peaks.fetch = Math.max(peaks.fetch, peakRssMb(fetcher));
  peaks.work = Math.max(peaks.work, ...workers.map(peakRssMb));
  for (const c of [fetcher, ...workers]) c.kill('SIGTERM');
  const codes = await Promise.all([fetcher, ...workers, producer].map(exit));
  await db.end();
  rmSync(dir, { recursive: true, force: true });

  const row = (mode: string, tasks: number, s: number, rss: number): Result => ({
    mode,
    tasks,
    seconds: s,
    rate: tasks / s,
    peakRssMb: rss,
  });
  const whole = row('e2e', N, seconds, Math.max(peaks.fetch, peaks.work, peaks.produce));
  report(
    'e2e',
    `One run: ${N} tasks from the source table to result rows, produce + 1 ` +
      `fetch + ${WORKERS} work processes (no-op stage, concurrency 64) on the ` +
      `same machine as ` +
      `MariaDB and Kafka; exit codes ${codes.join(', ')}.`,
    'tasks',
    [
      ['produce -> fetch -> work, first publish to last result', whole],
      ['of which produce alone (its process, start to exit)', row('produce', N, produceSeconds, peaks.produce)],
      ['fetch process (peak RSS)', row('fetch', N, seconds, peaks.fetch)],
      [`work processes, ${WORKERS} (highest peak RSS)`, row('work', N, seconds, peaks.work)],
    ],
    [
      {
        target: 'every task has a result, every process exits 0 on SIGTERM',
        show: `${N} results, exit codes ${codes.join(', ')}`,
        pass: codes.every((c) => c === 0),
      },
    ],
  );
}

await main();
