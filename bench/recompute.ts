// npm run bench:recompute — a stage version change on 1M done tasks of a 3-stage no-op pipeline: (a) the workers'
// first run from a pre-filled spool; (b) `produce --recompute` with stage 3's version changed: the stale scan and the
// publishing (real Kafka); (c) the workers recomputing the same tasks from the same kind of spool (stages 1 and 2
// reused, stage 3 run, results replaced), next to (a) in the same sitting; (d) `--recompute` again with nothing
// stale. Then (e) at 10M done rows (written straight into the ledger): a `produce` rerun with nothing pending and a
// `--recompute` with nothing stale.
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { defaults, mergeLayers, type SluiceConfig } from '../src/config/config.js';
import { validateConfig } from '../src/config/validate.js';
import { silentLogger } from '../src/core/logger.js';
import { withDatabase } from '../src/db/database-url.js';
import { migrate } from '../src/db/migrate.js';
import { produce } from '../src/producer/producer.js';
import { spoolPaths } from '../src/spool/layout.js';
import type { SpoolItem } from '../src/spool/segment.js';
import { SpoolWriter } from '../src/spool/writer.js';
import { startWorker } from '../src/worker/worker.js';
import { openPool, type Pool } from '../src/db/pool.js';
import { prepareRecompute, staleSet, stageVersions, type StaleRun } from '../src/producer/recompute.js';
import { checkPipelineTables } from '../src/user-tables/pipeline-tables.js';
import { writeResults, type Check } from './lib.js';

const url = process.env.BENCH_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/sluice_bench_recompute';
const N = Number(process.env.BENCH_RECOMPUTE_TASKS ?? 1_000_000);
const BIG = Number(process.env.BENCH_RECOMPUTE_BIG_ROWS ?? 10_000_000);
const brokers = (process.env.SLUICE_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const log = silentLogger();
const payload = { title: 'Document', body: 'lorem ipsum '.repeat(25) };
const noop = (): Promise<unknown> => Promise.resolve({ ok: true });

function config(dir: string, pipeline: string, table: string, v3: string): SluiceConfig {
  return validateConfig(
    mergeLayers(structuredClone(defaults), {
      database: { url },
      kafka: { brokers },
      spool: { dir },
      worker: { pollMs: 5, maxInFlight: 1024 },
      pipelines: {
        [pipeline]: {
          topic: `sluice.bench.${pipeline}`,
          partitions: 4,
          source: { table, key: 'id', columns: [] },
          stages: [
            { name: 'ner', concurrency: 64, run: noop },
            { name: 'lookup', concurrency: 64, run: noop },
            { name: 'match', concurrency: 64, run: noop, version: v3 },
          ],
        },
      },
    }),
  );
}

let pool: Pool;

/** What --recompute reads, as produce sets it up (the first check and the scan are timed on their own). */
async function staleRun(c: SluiceConfig, pipeline: string): Promise<StaleRun> {
  const p = c.pipelines[pipeline]!;
  return {
    pool,
    db: (_what, fn) => fn(),
    source: await checkPipelineTables(pool, p),
    filter: { pipeline, stages: stageVersions(p), includeOffline: false, staleAfterMs: c.producer.staleAfterMs },
  };
}

/** Fills the spool with every task, then times the workers to the last result. */
async function work(c: SluiceConfig, pipeline: string, n: number): Promise<{ seconds: number; rate: number }> {
  const writer = new SpoolWriter(spoolPaths(c.spool.dir, pipeline), 500);
  await writer.open();
  for (let i = 0; i < n; i += 50_000) {
    const items: SpoolItem[] = Array.from({ length: Math.min(50_000, n - i) }, (_, k) => ({
      partition: 0,
      offset: String(i + k),
      task: { v: 1, pipeline, key: i + k + 1, payload, attempt: 1, runId: 'bench', producedAt: '' },
    }));
    await writer.writeItems(0, items);
  }
  const t0 = performance.now();
  const s = await (await startWorker({ config: c, pipeline, log, exitWhenIdle: true })).done;
  const seconds = (performance.now() - t0) / 1000;
  if (s.done !== n) throw new Error(`expected ${n} tasks done, got ${s.done}`);
  return { seconds, rate: n / seconds };
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, seconds: (performance.now() - t0) / 1000 };
}

/** 10M done tasks with current milestones, written as the ledger holds them (no run needed to measure a scan). */
async function bigLedger(db: mysql.Connection, pipeline: string, rows: number): Promise<void> {
  await db.query('CREATE TABLE bench_big (id BIGINT PRIMARY KEY)');
  // As a worker does at start, before its first milestone.
  for (const stage of ['ner', 'lookup', 'match'])
    await db.query(
      "INSERT INTO sluice_stage_versions (pipeline, stage, version, first_seen_at) VALUES (?, ?, '1', NOW(3))",
      [pipeline, stage],
    );
  const step = 1_000_000;
  for (let from = 1; from <= rows; from += step) {
    const to = Math.min(rows, from + step - 1);
    const seq = `seq_${from}_to_${to}`;
    await db.query(`INSERT INTO bench_big SELECT seq FROM ${seq}`);
    await db.query(
      'INSERT INTO sluice_results (pipeline, task_key, output, attempts, started_at, finished_at, duration_ms) ' +
        `SELECT ?, CAST(seq AS CHAR), 'null', 1, NOW(3), NOW(3), 0 FROM ${seq}`,
      [pipeline],
    );
    for (const stage of ['ner', 'lookup', 'match'])
      await db.query(
        'INSERT INTO sluice_milestones (pipeline, task_key, stage, output, duration_ms, attempt, version) ' +
          `SELECT ?, CAST(seq AS CHAR), ?, '{"ok":true}', 0, 1, '1' FROM ${seq}`,
        [pipeline, stage],
      );
    console.error(`  ledger of ${to} done tasks written`);
  }
}

async function main(): Promise<void> {
  console.error(`bench:recompute on ${cpus().length} cores, node ${process.version}: ${N} tasks, then ${BIG}`);
  const server = await mysql.createConnection(withDatabase(url, 'mysql'));
  await server.query(`DROP DATABASE IF EXISTS \`${new URL(url).pathname.slice(1)}\``);
  await server.end();
  await migrate({ ...defaults.database, url }, log);
  const db = await mysql.createConnection(url);
  pool = await openPool({ ...defaults.database, url }, { poolSize: 2 });
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-recompute-'));
  const pipeline = `brc${Date.now().toString(36)}`;
  try {
    await db.query('CREATE TABLE bench_rc (id BIGINT PRIMARY KEY)');
    await db.query(`INSERT INTO bench_rc SELECT seq FROM seq_1_to_${N}`);
    const first = await work(config(join(dir, 'a'), pipeline, 'bench_rc', '1'), pipeline, N);
    console.error(`  (a) first run: ${Math.round(first.rate)}/s`);
    const v2 = config(join(dir, 'b'), pipeline, 'bench_rc', '2');
    const dry = await timed(async () => staleSet(await staleRun(v2, pipeline)));
    const pub = await timed(() => produce({ config: v2, pipeline, log, count: false, recompute: {} }));
    console.error(`  (b) scan ${dry.seconds.toFixed(1)} s, scan + publish ${pub.seconds.toFixed(1)} s`);
    const again = await work(v2, pipeline, N);
    console.error(`  (c) recompute: ${Math.round(again.rate)}/s`);
    const none = await timed(async () => prepareRecompute(await staleRun(v2, pipeline)));
    const figures: Record<string, unknown> = { tasks: N, first, dry: dry.seconds, publish: pub.seconds, again };
    const lines = [
      `### recompute (${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores, node ${process.version})`,
      '',
      `${N.toLocaleString('en')} done tasks of a 3-stage no-op pipeline; stage 3's version changed.`,
      '',
      '| step | tasks | seconds | tasks/s |',
      '| --- | ---: | ---: | ---: |',
      `| (a) workers, first run (from a full spool) | ${N} | ${first.seconds.toFixed(1)} | ${Math.round(first.rate)} |`,
      `| (b) stale scan (what --recompute --dry-run counts) | ${dry.value.count} | ${dry.seconds.toFixed(1)} | ` +
        `${Math.round(N / dry.seconds)} |`,
      `| (b) scan + publish (--recompute) | ${pub.value.published} | ${pub.seconds.toFixed(1)} | ` +
        `${Math.round(pub.value.published / pub.seconds)} |`,
      `| (c) workers, recompute from stage 3 | ${N} | ${again.seconds.toFixed(1)} | ${Math.round(again.rate)} |`,
      `| (d) first check with nothing stale${none.value ? ' (found something: a pass follows)' : ''} | 0 | ` +
        `${none.seconds.toFixed(2)} | |`,
    ];
    const checks: Check[] = [
      {
        target: '(c) >= 90% of (a)',
        show: `${Math.round((100 * again.rate) / first.rate)}%`,
        pass: again.rate >= 0.9 * first.rate,
      },
      { target: '(b) every task found stale', show: String(dry.value.count), pass: dry.value.count === N },
    ];
    if (BIG > 0) {
      const big = `${pipeline}x`;
      await bigLedger(db, big, BIG);
      await db.query('ANALYZE TABLE sluice_milestones, sluice_results, bench_big');
      const c = config(join(dir, 'e'), big, 'bench_big', '1');
      const rerun = await timed(() => produce({ config: c, pipeline: big, log, count: false }));
      const check = await timed(async () => prepareRecompute(await staleRun(c, big)));
      figures.big = { rows: BIG, rerun: rerun.seconds, nothingStale: check.seconds, passNeeded: check.value };
      lines.push(
        `| (e) ${BIG.toLocaleString('en')} done: produce rerun, nothing pending | ${rerun.value.published} | ` +
          `${rerun.seconds.toFixed(1)} | |`,
        `| (e) ${BIG.toLocaleString('en')} done: --recompute's first check, nothing stale | 0 | ` +
          `${check.seconds.toFixed(2)} | |`,
      );
      checks.push(
        {
          target: `(e) nothing stale at ${BIG.toLocaleString('en')} rows: < 20 s and no more than the rerun`,
          show: `${check.seconds.toFixed(2)} s vs ${rerun.seconds.toFixed(1)} s`,
          pass: check.seconds < 20 && check.seconds <= rerun.seconds,
        },
        {
          target: '(e) answered from the index in under a second',
          show: `${check.seconds.toFixed(2)} s${check.value ? ' (a pass would follow)' : ''}`,
          pass: check.seconds < 1 && !check.value,
        },
      );
    }
    writeResults('recompute', lines, checks, figures);
  } finally {
    await db.end();
    await pool.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
