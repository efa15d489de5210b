// npm run bench:work — workers from a pre-filled spool to result rows: (a) no-op stage, (a2) the same writing
// into a user result table instead of sluice_results, (b) one stage
// awaiting 20 ms at concurrency 64 against Little's law (64 / 0.020 s = 3,200/s), (c) BullMQ doing the
// same no-op job at the same concurrency, writing the same result rows to MySQL.
import { cpus } from 'node:os';
import mysql from 'mysql2/promise';
import { defaults } from '../src/config/config.js';
import { silentLogger } from '../src/core/logger.js';
import { withDatabase } from '../src/db/database-url.js';
import { migrate } from '../src/db/migrate.js';
import { ensureBullmq, median, report, REPEATS, variant, type Result } from './lib.js';

const url = process.env.BENCH_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/sluice_bench_work';
const N = Number(process.env.BENCH_WORK_TASKS ?? 100_000);
const SLEEP_N = Number(process.env.BENCH_WORK_SLEEP_TASKS ?? 16_000);
const BOUND = 64 / 0.02;

const workVariant = (...args: string[]): Promise<Result> =>
  variant('bench/work-worker.ts', args, { ...process.env, BENCH_DATABASE_URL: url });

async function main(): Promise<void> {
  console.error(`bench:work on ${cpus().length} cores, node ${process.version}`);
  await ensureBullmq();
  const server = await mysql.createConnection(withDatabase(url, 'mysql'));
  await server.query(`DROP DATABASE IF EXISTS \`${new URL(url).pathname.slice(1)}\``);
  await server.end();
  await migrate({ ...defaults.database, url }, silentLogger());

  const noop = await median(REPEATS, () => workVariant('noop', String(N)));
  const user = await median(REPEATS, () => workVariant('usertable', String(N)));
  const sleep = await median(REPEATS, () => workVariant('sleep', String(SLEEP_N)));
  const bull = await median(REPEATS, () => workVariant('bullmq', String(N)));
  report(
    'work',
    `Median of ${REPEATS} runs (all runs' tasks/s in brackets); each run starts from a spool (or ` +
      `a BullMQ queue) already holding every task and ends when every result ` +
      `row is written.`,
    'tasks',
    [
      ['(a) sluice, no-op stage, concurrency 64', noop],
      ['(a2) sluice, no-op stage, results into a user table (two TEXT columns)', user],
      ['(b) sluice, one stage awaiting 20 ms, concurrency 64', sleep],
      ['(c) BullMQ, same no-op job, concurrency 64, same result rows', bull],
    ],
    [
      { target: '(a) >= 20,000 tasks/s', show: `${Math.round(noop.rate)}/s`, pass: noop.rate >= 20_000 },
      {
        target: '(a2) >= 90% of (a)',
        show: `${Math.round((100 * user.rate) / noop.rate)}%`,
        pass: user.rate >= 0.9 * noop.rate,
      },
      {
        target: '(b) >= 90% of 64 / 0.020 s = 3,200/s',
        show: `${Math.round((100 * sleep.rate) / BOUND)}%`,
        pass: sleep.rate >= 0.9 * BOUND,
      },
      {
        target: '(c) sluice faster than BullMQ',
        show: `sluice/BullMQ = ${(noop.rate / bull.rate).toFixed(1)}x`,
        pass: noop.rate > bull.rate,
      },
    ],
  );
}

await main();
