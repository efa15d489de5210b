// npm run bench:scale — sluice on a 10,000,000-row source with 9,900,000 done, as after a long run that
// missed 1%: the user's result table holds 9.9M rows, and the ledger the 9.9M milestones and dispatch
// records that run left. Measured on this machine, each command in its own process (peak RSS by
// /usr/bin/time): `produce` finding and publishing the 100,000 pending; the workers' results for them
// (written straight to the tables); a `produce` rerun that finds 0; `status`; one dashboard refresh (the
// database time it reports, and the whole request). The same on the first 1,000,000 rows (a `where` on the
// same table), for the RSS comparison. The seeded tables are kept for the next run (BENCH_SCALE_RESEED=1
// seeds again); each run puts the 1% pending back first.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { defaults } from '../src/config/config.js';
import { silentLogger } from '../src/core/logger.js';
import { sleep } from '../src/core/sleep.js';
import { withDatabase } from '../src/db/database-url.js';
import { migrate } from '../src/db/migrate.js';
import { writeResults, type Check } from './lib.js';

const url = process.env.BENCH_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/sluice_bench_scale';
const ROWS = Number(process.env.BENCH_SCALE_ROWS ?? 10_000_000);
const SMALL = ROWS / 10;
const CLI = new URL('../src/cli.ts', import.meta.url).pathname;
const RUN = Math.random().toString(16).slice(2, 8);
const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-scale-'));

const db = await mysql.createConnection({ uri: withDatabase(url, 'mysql'), multipleStatements: true });
const dbName = new URL(url).pathname.slice(1);
await db.query(`CREATE DATABASE IF NOT EXISTS \`${dbName}\``);
await db.query(`USE \`${dbName}\``);
await migrate({ ...defaults.database, url }, silentLogger());

const pipelines = { big: 'scale_10m', small: 'scale_1m' } as const;

async function seeded(): Promise<boolean> {
  const [rows] = await db
    .query<RowDataPacket[]>('SELECT rows_seeded FROM bench_scale_meta WHERE id = 1')
    .catch(() => [[]] as unknown as [RowDataPacket[]]);
  return Number(rows[0]?.rows_seeded ?? 0) === ROWS && process.env.BENCH_SCALE_RESEED !== '1';
}

/**
 * The source, the user's result table, and the earlier run's milestones and dispatch records: all but every 100th key
 * done.
 */
async function seed(): Promise<void> {
  const t0 = performance.now();
  await db.query('DROP TABLE IF EXISTS bench_scale_meta, bench_scale_src, bench_scale_results');
  for (const p of Object.values(pipelines))
    for (const t of ['sluice_milestones', 'sluice_dispatches', 'sluice_dead_tasks', 'sluice_count_snapshots'])
      await db.query(`DELETE FROM ${t} WHERE pipeline = ?`, [p]);
  await db.query('CREATE TABLE bench_scale_src (id INT PRIMARY KEY, body VARCHAR(120) NOT NULL)');
  await db.query(
    `INSERT INTO bench_scale_src SELECT seq, CONCAT('Document ', seq, ' about ` +
      `Ada Lovelace and Alan Turing in London') FROM seq_1_to_${ROWS}`,
  );
  await db.query('CREATE TABLE bench_scale_results (id INT PRIMARY KEY, entities VARCHAR(200) NOT NULL)');
  await db.query(
    `INSERT INTO bench_scale_results SELECT seq, '["Ada Lovelace","Alan ` +
      `Turing","London"]' FROM seq_1_to_${ROWS} WHERE seq % 100 <> 0`,
  );
  console.error(`  source and results: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  for (const [p, n] of [
    [pipelines.big, ROWS],
    [pipelines.small, SMALL],
  ] as const) {
    await db.query(
      `INSERT INTO sluice_milestones (pipeline, task_key, stage, output, ` +
        `duration_ms, attempt, created_at)
       SELECT ?, CAST(seq AS CHAR), 'ner', '{"entities":3}', 20, 1, ` +
        `NOW(3) - INTERVAL 1 DAY FROM seq_1_to_${n} WHERE seq % 100 <> 0`,
      [p],
    );
    await db.query(
      `INSERT INTO sluice_dispatches (pipeline, task_key, run_id, topic, ` +
        `dispatches, dispatched_at)
       SELECT ?, CAST(seq AS CHAR), 'earlier-run', 't', 1, NOW(3) - ` +
        `INTERVAL 2 DAY FROM seq_1_to_${n} WHERE seq % 100 <> 0`,
      [p],
    );
    console.error(`  ledger of ${p}: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  await db.query('ANALYZE TABLE bench_scale_src, bench_scale_results, sluice_milestones, sluice_dispatches');
  await db.query('CREATE TABLE bench_scale_meta (id INT PRIMARY KEY, rows_seeded BIGINT NOT NULL)');
  await db.query('INSERT INTO bench_scale_meta VALUES (1, ?)', [ROWS]);
  console.error(`  seeded ${ROWS} rows in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}

/** Every 100th key of the first `n` is pending again: its result, milestone and dispatch record gone. */
async function resetPending(pipeline: string, n: number): Promise<void> {
  // Joined deletes: MariaDB runs DELETE ... WHERE id IN (subquery) as a scan of the whole table.
  const keys = `(SELECT seq * 100 AS k FROM seq_1_to_${n / 100}) q`;
  await db.query(`DELETE t FROM bench_scale_results t JOIN ${keys} ON t.id = q.k`);
  await db.query(
    `DELETE t FROM sluice_milestones t JOIN ${keys} ON t.pipeline = ? AND ` +
      `t.stage = 'ner' AND t.task_key = CAST(q.k AS CHAR)`,
    [pipeline],
  );
  await db.query(
    `DELETE t FROM sluice_dispatches t JOIN ${keys} ON t.pipeline = ? AND t.task_key = CAST(q.k AS CHAR)`,
    [pipeline],
  );
  await db.query('DELETE FROM sluice_count_snapshots WHERE pipeline = ?', [pipeline]);
}

/** What the workers would leave for the pending keys: the result row and the milestone, now. */
async function completePending(pipeline: string, n: number): Promise<void> {
  const keys = `SELECT seq * 100 AS k FROM seq_1_to_${n / 100}`;
  await db.query(`INSERT INTO bench_scale_results SELECT k, '["Ada Lovelace"]' FROM (${keys}) q`);
  await db.query(
    `INSERT INTO sluice_milestones (pipeline, task_key, stage, output, ` +
      `duration_ms, attempt) SELECT ?, CAST(k AS CHAR), 'ner', ` +
      `'{"entities":1}', 20, 1 FROM (${keys}) q`,
    [pipeline],
  );
}

const config = join(dir, 'sluice.config.ts');
const pipelineConfig = (n: number, where?: string): string =>
  `{
    topic: 'bench.scale.${n}.${RUN}', partitions: 6,
    source: { ` +
  `table: 'bench_scale_src', key: 'id', columns: ` +
  `['body']${where === undefined ? '' : `, where: ${JSON.stringify(where)}`} ` +
  `},
    results: { table: 'bench_scale_results', key: 'id', columns: ` +
  `['entities'], row: (o) => ({ entities: JSON.stringify(o) }) },
    stages: [{ name: 'ner', run: async () => ({}) }],
  }`;
writeFileSync(
  config,
  `export default { ` +
    `pipelines: {\n  ${pipelines.big}: ${pipelineConfig(ROWS)},\n  ` +
    `${pipelines.small}: ${pipelineConfig(SMALL, `id <= ${SMALL}`)},\n} };\n`,
);
const env = {
  ...process.env,
  DATABASE_URL: url,
  SLUICE_CONFIG: config,
  SLUICE_LOG_LEVEL: 'info',
  SLUICE_LOG_PRETTY: 'false',
};

interface Run {
  seconds: number;
  rssMb: number;
  stdout: string;
  stderr: string;
}

/** One CLI command in its own process, under /usr/bin/time for its peak RSS; `during` runs while it does. */
async function cli(args: string[], during?: (child: ReturnType<typeof spawn>) => Promise<void>): Promise<Run> {
  const t0 = performance.now();
  const child = spawn(
    '/usr/bin/time',
    ['-f', 'SLUICE_BENCH_RSS_KB %M', process.execPath, '--import', 'tsx', CLI, ...args],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  if (during !== undefined) await during(child);
  const code = await exited;
  const seconds = (performance.now() - t0) / 1000;
  const rss = /SLUICE_BENCH_RSS_KB (\d+)/.exec(stderr);
  if (rss === null || code !== 0)
    throw new Error(`sluice ${args.join(' ')} failed (exit ${code}):\n${stderr.slice(-2000)}`);
  return { seconds, rssMb: Math.round(Number(rss[1]) / 1024), stdout, stderr };
}

function logField(run: Run, msg: string, field: string): unknown {
  for (const line of run.stdout.split('\n').concat(run.stderr.split('\n'))) {
    if (!line.startsWith('{')) continue;
    const rec = JSON.parse(line) as Record<string, unknown>;
    if (rec.msg === msg) return rec[field];
  }
  return undefined;
}

async function dashboardRefresh(pipeline: string): Promise<{
  run: Run;
  overviewMs: number;
  databaseMs: number;
  stagesMs: number;
  quarantineMs: number;
  firstStagesMs: number;
}> {
  const port = 17460 + Math.floor(Math.random() * 1000);
  const times: Array<{ overviewMs: number; databaseMs: number; stagesMs: number; quarantineMs: number }> = [];
  const run = await cli(['dashboard', '--port', String(port)], async (child) => {
    const base = `http://127.0.0.1:${port}/api/pipelines/${pipeline}`;
    for (let i = 0; i < 100; i++) {
      if (
        await fetch(`http://127.0.0.1:${port}/api/pipelines`).then(
          (r) => r.ok,
          () => false,
        )
      )
        break;
      await sleep(200);
    }
    // The page's refresh: the overview and the stage charts (the quarantine list on its own tab).
    for (let i = 0; i < 3; i++) {
      if (i > 0) await sleep(2000);
      let t = performance.now();
      const o = (await fetch(base).then((r) => r.json())) as { timings: { databaseMs: number } };
      const overviewMs = performance.now() - t;
      t = performance.now();
      await fetch(`${base}/stages`).then((r) => r.json());
      const stagesMs = performance.now() - t;
      t = performance.now();
      await fetch(`${base}/quarantine`).then((r) => r.json());
      times.push({ overviewMs, databaseMs: o.timings.databaseMs, stagesMs, quarantineMs: performance.now() - t });
    }
    // The child is /usr/bin/time: the signal goes to the command under it, and time then reports.
    const pid = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ')[0];
    process.kill(Number(pid), 'SIGTERM');
  });
  // The first load reads the whole 30-minute window of the charts; a refresh only the buckets since (the
  // server keeps the final ones): the slower of the two refreshes after it.
  const firstStagesMs = times[0]!.stagesMs;
  const refreshes = times.slice(1).sort((a, b) => a.overviewMs + a.stagesMs - (b.overviewMs + b.stagesMs));
  return { run, ...refreshes[refreshes.length - 1]!, firstStagesMs };
}

async function scale(pipeline: string, n: number) {
  console.error(`== ${pipeline}: ${n} rows, ${n / 100} pending`);
  await resetPending(pipeline, n);
  const produce = await cli(['produce', '--pipeline', pipeline]);
  const published = Number(logField(produce, 'produce finished', 'published'));
  console.error(`  produce: ${published} published in ${produce.seconds.toFixed(1)} s, ${produce.rssMb} MB`);
  await completePending(pipeline, n);
  const rerun = await cli(['produce', '--pipeline', pipeline]);
  const republished = Number(logField(rerun, 'produce finished', 'published'));
  console.error(`  rerun: ${republished} published in ${rerun.seconds.toFixed(1)} s, ${rerun.rssMb} MB`);
  const status = await cli(['status', '--pipeline', pipeline, '--json']);
  const report = JSON.parse(status.stdout) as {
    done: number;
    source: number;
    exact: boolean;
    timings: { databaseMs: number };
  };
  console.error(
    `  status: ${report.done} of ${report.source} ` +
      `done (exact ${report.exact}), ` +
      `database ${report.timings.databaseMs} ms, ${status.seconds.toFixed(1)} s, ${status.rssMb} MB`,
  );
  const dash = await dashboardRefresh(pipeline);
  console.error(
    `  dashboard: first load of ` +
      `the charts ${Math.round(dash.firstStagesMs)} ms; refresh: ` +
      `database ${dash.databaseMs} ms, overview ${Math.round(dash.overviewMs)} ` +
      `ms, stages ${Math.round(dash.stagesMs)} ms, ${dash.run.rssMb} MB`,
  );
  return { produce, published, rerun, republished, status, report, dash };
}

if (!(await seeded())) await seed();
const small = await scale(pipelines.small, SMALL);
const big = await scale(pipelines.big, ROWS);
const exactT0 = performance.now();
const exact = await cli(['status', '--pipeline', pipelines.big, '--json', '--exact']);
const exactReport = JSON.parse(exact.stdout) as { done: number; source: number; timings: { databaseMs: number } };
const exactS = (performance.now() - exactT0) / 1000;
console.error(
  `  status --exact: ${exactReport.done} of ${exactReport.source}, database ${exactReport.timings.databaseMs} ms`,
);
const [[pool]] = await db.query<RowDataPacket[]>('SELECT @@innodb_buffer_pool_size / 1048576 AS mb');
await db.end();
rmSync(dir, { recursive: true, force: true });

const mb = (x: { rssMb: number }): string => `${x.rssMb}`;
const row = (label: string, s: Awaited<ReturnType<typeof scale>>): string[] => [
  `| produce (${label}): find and publish the pending | ${s.published} ` +
    `published | ${s.produce.seconds.toFixed(1)} | ${mb(s.produce)} |`,
  `| produce rerun (${label}): nothing pending | ${s.republished} ` +
    `published | ${s.rerun.seconds.toFixed(1)} | ${mb(s.rerun)} |`,
  `| ` +
    `status (${label}) | ${s.report.done} of ${s.report.source} done, ${s.report.exact ? 'exact' : 'estimate'}; ` +
    `database ${s.report.timings.databaseMs} ms | ${s.status.seconds.toFixed(1)} | ${mb(s.status)} |`,
  `| dashboard refresh (${label}) | database ${s.dash.databaseMs} ms; ` +
    `requests: overview ${Math.round(s.dash.overviewMs)} ` +
    `ms, stages ${Math.round(s.dash.stagesMs)} ms ` +
    `(first load ${Math.round(s.dash.firstStagesMs)} ms), ` +
    `quarantine ${Math.round(s.dash.quarantineMs)} ` +
    `ms | - | ${mb(s.dash.run)} |`,
];
const flat = (a: number, b: number): boolean => b <= a * 1.25 + 10;
const checks: Check[] = [
  {
    target: `produce rerun with nothing pending (${ROWS / 1e6}M) < 60 s`,
    show: `${big.rerun.seconds.toFixed(1)} s, ${big.republished} published`,
    pass: big.rerun.seconds < 60 && big.republished === 0,
  },
  {
    target: 'produce found and published every pending task',
    show: `${big.published} of ${ROWS / 100}`,
    pass: big.published === ROWS / 100,
  },
  {
    target: 'status < 1 s of database time',
    show: `${big.report.timings.databaseMs} ms`,
    pass: big.report.timings.databaseMs < 1000,
  },
  {
    target: 'status counts every row done after the rerun',
    show: `${big.report.done} of ${big.report.source}`,
    pass: big.report.done === ROWS && big.report.source === ROWS,
  },
  {
    target: 'dashboard refresh < 1 s of database time (overview + stages)',
    show: `${big.dash.databaseMs} + ${Math.round(big.dash.stagesMs)} ms`,
    pass: big.dash.databaseMs + big.dash.stagesMs < 1000,
  },
  {
    target: `peak RSS at ${ROWS / 1e6}M within 25% (+10 MB) of ${SMALL / 1e6}M, each command`,
    show:
      `produce ${small.produce.rssMb} -> ${big.produce.rssMb}, rerun ` +
      `${small.rerun.rssMb} -> ${big.rerun.rssMb}, status ` +
      `${small.status.rssMb} -> ${big.status.rssMb}, ` +
      `dashboard ${small.dash.run.rssMb} -> ${big.dash.run.rssMb} MB`,
    pass:
      flat(small.produce.rssMb, big.produce.rssMb) &&
      flat(small.rerun.rssMb, big.rerun.rssMb) &&
      flat(small.status.rssMb, big.status.rssMb) &&
      flat(small.dash.run.rssMb, big.dash.run.rssMb),
  },
];
writeResults(
  'scale',
  [
    `### scale (${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores, node ${process.version})`,
    '',
    `A ${ROWS.toLocaleString('en')}-row ` +
      `source with ${(ROWS - ROWS / 100).toLocaleString('en')} done (the ` +
      `user's result table, and the earlier run's milestones and ` +
      `dispatch records in the ledger), every 100th key pending; the same on ` +
      `the first ${SMALL.toLocaleString('en')} rows for comparison. MariaDB ` +
      `with its default ${Math.round(Number(pool?.mb))} MB buffer pool, Kafka ` +
      `and the commands on the same 2 cores. Each ` +
      `command in its own process; seconds are the whole command, start-up ` +
      `included. After the rerun, the pending tasks' results were written ` +
      `straight to the tables, as workers would.`,
    '',
    '| command | what | seconds | peak RSS MB |',
    '| --- | --- | ---: | ---: |',
    ...row(`${SMALL / 1e6}M`, small),
    ...row(`${ROWS / 1e6}M`, big),
    `| status ` +
      `--exact (${ROWS / 1e6}M) | ${exactReport.done} of ${exactReport.source} ` +
      `done; ` +
      `database ${exactReport.timings.databaseMs} ms | ${exactS.toFixed(1)} | ${exact.rssMb} |`,
  ],
  checks,
  {
    small: summary(small),
    big: summary(big),
    exact: { seconds: exactS, databaseMs: exactReport.timings.databaseMs, rssMb: exact.rssMb },
  },
);

function summary(s: Awaited<ReturnType<typeof scale>>) {
  return {
    produce: { seconds: s.produce.seconds, published: s.published, rssMb: s.produce.rssMb },
    rerun: { seconds: s.rerun.seconds, published: s.republished, rssMb: s.rerun.rssMb },
    status: { seconds: s.status.seconds, databaseMs: s.report.timings.databaseMs, rssMb: s.status.rssMb },
    dashboard: {
      databaseMs: s.dash.databaseMs,
      overviewMs: s.dash.overviewMs,
      stagesMs: s.dash.stagesMs,
      firstStagesMs: s.dash.firstStagesMs,
      rssMb: s.dash.run.rssMb,
    },
  };
}
