// npm run bench:produce — sluice's producer against the naive method it replaces and against the raw limits
// of its two halves. Source: 1,000,000 rows (key + ~300-byte payload), 500,000 of them already done; the same
// source with a BINARY(16) key (random order, as UUIDs are) and with a two-column key (tenant, id), each held to
// 80% of the integer key's rate in the same run.
// Every variant runs in its own process; peak RSS is that process's.
import { cpus, totalmem } from 'node:os';
import mysql from 'mysql2/promise';
import { silentLogger } from '../src/core/logger.js';
import { defaults } from '../src/config/config.js';
import { withDatabase } from '../src/db/database-url.js';
import { migrate } from '../src/db/migrate.js';
import { median, report, REPEATS, variant, type Result } from './lib.js';

const url = process.env.BENCH_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/sluice_bench';
const BIG = Number(process.env.BENCH_ROWS ?? 1_000_000);
const SMALL = Math.round(BIG / 10);
const NAIVE_SAMPLES = Number(process.env.BENCH_NAIVE_SAMPLES ?? 12);

const produceVariant = (...args: string[]): Promise<Result> =>
  variant('bench/produce-worker.ts', args, { ...process.env, BENCH_DATABASE_URL: url });

/** The key shapes: the columns, how a number n becomes the key, and the key's canonical text in SQL. */
const SHAPES = {
  int: { ddl: 'id BIGINT PRIMARY KEY', cols: 'id', values: 'n', text: 'CONVERT(id USING utf8mb4)' },
  binary16: {
    ddl: 'id BINARY(16) PRIMARY KEY',
    cols: 'id',
    values: 'UNHEX(MD5(n))',
    text: 'LOWER(HEX(id))',
  },
  pair: {
    ddl: 'tenant_id INT NOT NULL, id BIGINT NOT NULL, PRIMARY KEY (tenant_id, id)',
    cols: 'tenant_id, id',
    values: 'n % 10, n',
    text: "CONCAT(tenant_id, ',', id)",
  },
} as const;

async function seed(
  conn: mysql.Connection,
  table: string,
  rows: number,
  pipeline: string,
  shape: keyof typeof SHAPES = 'int',
): Promise<void> {
  const t0 = performance.now();
  const k = SHAPES[shape];
  await conn.query(`CREATE TABLE ${table} (${k.ddl}, title VARCHAR(100) NOT NULL, body VARCHAR(400) NOT NULL)`);
  const [[{ v }]] = (await conn.query('SELECT VERSION() AS v')) as unknown as [[{ v: string }]];
  const numbers = /mariadb/i.test(v)
    ? `SELECT seq AS n FROM seq_1_to_${rows}`
    : `WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ${rows}) SELECT n FROM c`;
  if (!/mariadb/i.test(v)) await conn.query(`SET SESSION cte_max_recursion_depth = ${rows + 1}`);
  await conn.query(
    `INSERT INTO ${table} (${k.cols}, title, body) SELECT ${k.values}, CONCAT('Document ', n), ` +
      `CONCAT(REPEAT('lorem ipsum ', 24), n) FROM (${numbers}) q`,
  );
  await conn.query(
    `INSERT INTO sluice_results (pipeline, task_key, started_at, finished_at, duration_ms)
     SELECT ?, ${k.text}, NOW(3), NOW(3), 1 FROM ${table} WHERE CAST(SUBSTRING(title, 10) AS UNSIGNED) % 2 = 0`,
    [pipeline],
  );
  await conn.query(`ANALYZE TABLE ${table}, sluice_results`);
  console.error(
    `  seeded ${table}: ${rows} rows, ${rows / 2} done (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
}

async function main(): Promise<void> {
  console.error(
    `bench:produce on ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`,
  );
  const server = await mysql.createConnection(withDatabase(url, 'mysql'));
  const dbName = new URL(url).pathname.slice(1);
  await server.query(`DROP DATABASE IF EXISTS \`${dbName}\``);
  await server.end();
  await migrate({ ...defaults.database, url }, silentLogger());
  const conn = await mysql.createConnection({ uri: url, multipleStatements: true });
  await seed(conn, 'bench_small', SMALL, 'bench_small');
  await seed(conn, 'bench_big', BIG, 'bench_big');
  await seed(conn, 'bench_bin', BIG, 'bench_bin', 'binary16');
  await seed(conn, 'bench_pair', BIG, 'bench_pair', 'pair');
  await conn.query(
    'CREATE TABLE naive_results (task_key BIGINT PRIMARY KEY) SELECT id AS task_key FROM bench_big WHERE id % 2 = 0',
  );
  // Each sluice run starts from "nothing in flight", as a first run does.
  const reset = async (): Promise<void> => void (await conn.query('DELETE FROM sluice_dispatches'));

  const antijoin = await produceVariant('antijoin', 'bench_big', 'bench_big');
  const kafka = await median(REPEATS, () => produceVariant('kafka', String(BIG / 2), '330'));
  const small = await median(REPEATS, () => produceVariant('sluice', 'bench_small', 'bench_small'), reset);
  const big = await median(REPEATS, () => produceVariant('sluice', 'bench_big', 'bench_big'), reset);
  const bin = await median(REPEATS, () => produceVariant('sluice', 'bench_bin', 'bench_bin'), reset);
  const pair = await median(
    REPEATS,
    () => produceVariant('sluice', 'bench_pair', 'bench_pair', JSON.stringify(['tenant_id', 'id'])),
    reset,
  );
  const naive = await produceVariant('naive', 'bench_big', String(NAIVE_SAMPLES));
  await conn.end();

  const slowerRaw = Math.min(antijoin.rate, kafka.rate);
  const checks = [
    {
      target: 'sluice >= 20x naive (a)',
      pass: big.rate / naive.rate >= 20,
      show: `${(big.rate / naive.rate).toFixed(1)}x`,
    },
    {
      target: 'sluice >= 70% of the slower raw limit (b)',
      pass: big.rate / slowerRaw >= 0.7,
      show: `${Math.round((100 * big.rate) / slowerRaw)}%`,
    },
    {
      target: 'BINARY(16) key >= 80% of the integer key',
      pass: bin.rate / big.rate >= 0.8,
      show: `${Math.round((100 * bin.rate) / big.rate)}%`,
    },
    {
      target: 'two-column key >= 80% of the integer key',
      pass: pair.rate / big.rate >= 0.8,
      show: `${Math.round((100 * pair.rate) / big.rate)}%`,
    },
    {
      target: `peak RSS flat from ${SMALL / 1000}k to ${BIG / 1000}k rows`,
      pass: big.peakRssMb <= small.peakRssMb * 1.25,
      show: `${small.peakRssMb} MB -> ${big.peakRssMb} MB`,
    },
  ];
  report(
    'produce',
    `Median of ${REPEATS} runs where a variant shows several (all runs' tasks/s in brackets); ` +
      `peak RSS is the highest of them.`,
    'tasks',
    [
      ['sluice produce, 1M source / 500k pending', big],
      ['sluice produce, 1M source / 500k pending, BINARY(16) key (random order)', bin],
      ['sluice produce, 1M source / 500k pending, two-column key (tenant_id, id)', pair],
      [`sluice produce, ${SMALL / 1000}k source / ${SMALL / 2000}k pending`, small],
      [
        `(a) naive OFFSET + NOT IN, 1000/page ` +
          `(extrapolated from ${String(naive.pagesMeasured)} of ${String(naive.pages)} pages)`,
        naive,
      ],
      ['(b) anti-join streamed alone, no Kafka', antijoin],
      ['(b) kafkajs pre-built 1 MiB batches alone, no database', kafka],
    ],
    checks,
  );
}

await main();
