// One work benchmark variant in its own process. Prints one JSON line.
//   noop   <n>   sluice workers, one no-op stage, from a pre-filled spool to result rows
//   sleep  <n>   sluice workers, one stage awaiting 20 ms, concurrency 64
//   bullmq <n>   BullMQ (Redis) with the same no-op job and concurrency, writing the same result rows
//   usertable <n> the no-op stage writing into a user result table (two TEXT columns) instead of sluice_results
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { defaults, mergeLayers, type ResultsConfig, type StageConfig } from '../src/config/config.js';
import { validateConfig } from '../src/config/validate.js';
import { silentLogger } from '../src/core/logger.js';
import { spoolPaths } from '../src/spool/layout.js';
import type { SpoolItem } from '../src/spool/segment.js';
import { SpoolWriter } from '../src/spool/writer.js';
import { startWorker } from '../src/worker/worker.js';

const [mode, nArg] = process.argv.slice(2);
const n = Number(nArg);
const url = process.env.BENCH_DATABASE_URL!;
const CONCURRENCY = 64;
const emit = (o: Record<string, unknown>): void =>
  console.log(JSON.stringify({ mode, ...o, peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024) }));
const payload = { title: 'Document', body: 'lorem ipsum '.repeat(25) };

async function sluice(stage: StageConfig, results?: ResultsConfig): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-work-'));
  const pipeline = `bw${randomUUID().slice(0, 8)}`;
  try {
    // Workers run only tasks whose key has a source row.
    const conn = await mysql.createConnection(url);
    await conn.query('CREATE TABLE IF NOT EXISTS bench_work_source (id BIGINT PRIMARY KEY)');
    await conn.query(`INSERT IGNORE INTO bench_work_source SELECT seq FROM seq_1_to_${n}`);
    if (results !== undefined) {
      await conn.query(
        'CREATE TABLE IF NOT EXISTS bench_user_results (doc_id BIGINT PRIMARY ' +
          'KEY, ent_list_str TEXT NOT NULL, mapped_list_str TEXT NOT NULL)',
      );
      await conn.query('TRUNCATE bench_user_results');
    }
    await conn.end();
    const writer = new SpoolWriter(spoolPaths(dir, pipeline), 500);
    await writer.open();
    const items: SpoolItem[] = Array.from({ length: n }, (_, i) => ({
      partition: 0,
      offset: String(i),
      task: { v: 1, pipeline, key: i + 1, payload, attempt: 1, runId: 'bench', producedAt: '' },
    }));
    for (let i = 0; i < n; i += 50_000) await writer.writeItems(0, items.slice(i, i + 50_000));
    const config = validateConfig(
      mergeLayers(structuredClone(defaults), {
        database: { url },
        spool: { dir },
        worker: { pollMs: 5, maxInFlight: 1024 },
        pipelines: {
          [pipeline]: {
            topic: 'unused',
            source: { table: 'bench_work_source', key: 'id', columns: [] },
            stages: [stage],
            ...(results === undefined ? {} : { results }),
          },
        },
      }),
    );
    const t0 = performance.now();
    const w = await startWorker({ config, pipeline, log: silentLogger(), exitWhenIdle: true });
    const s = await w.done;
    const seconds = (performance.now() - t0) / 1000;
    emit({ tasks: s.done, seconds, rate: s.done / seconds });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface BullMq {
  Queue: new (
    name: string,
    opts: { connection: object },
  ) => {
    addBulk(jobs: Array<{ name: string; data: unknown; opts?: object }>): Promise<unknown>;
    obliterate(o: { force: boolean }): Promise<void>;
    close(): Promise<void>;
  };
  Worker: new (
    name: string,
    run: (job: { data: { key: number } }) => Promise<void>,
    opts: { connection: object; concurrency: number },
  ) => { on(event: string, f: () => void): void };
}

async function bullmq(): Promise<void> {
  // Installed on demand by bench/work.ts (not a dependency: see ensureBullmq there); typed here by hand.
  const spec: string = 'bullmq'; // a string, not a literal: tsc must not look for the package
  const { Queue, Worker } = (await import(spec)) as BullMq;
  const connection = { host: '127.0.0.1', port: 6379 };
  const name = `bench-${randomUUID().slice(0, 8)}`;
  const pipeline = `bq${randomUUID().slice(0, 8)}`;
  const queue = new Queue(name, { connection });
  for (let i = 0; i < n; i += 1000) {
    await queue.addBulk(
      Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({
        name: 'task',
        data: { key: i + k + 1, payload },
        opts: { removeOnComplete: true, removeOnFail: true },
      })),
    );
  }
  const pool = mysql.createPool({ uri: url, connectionLimit: 8 });
  let done = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const worker = new Worker(
      name,
      async (job) => {
        // The same result row sluice writes (one upsert per task: BullMQ has no batching of its own).
        const now = new Date();
        await pool.query(
          'INSERT INTO sluice_results (pipeline, task_key, output, attempts, ' +
            'worker_id, started_at, finished_at, duration_ms) VALUES (?, ?, ?, 1, ?, ' +
            '?, ?, 0) ON DUPLICATE KEY UPDATE pipeline = pipeline',
          [pipeline, String(job.data.key), 'null', 'bullmq', now, now],
        );
        if (++done >= n) resolve();
      },
      { connection, concurrency: CONCURRENCY },
    );
    worker.on('error', () => {});
  });
  const seconds = (performance.now() - t0) / 1000;
  emit({ tasks: done, seconds, rate: done / seconds });
  await queue.obliterate({ force: true }).catch(() => {});
  await queue.close();
  await pool.end();
  process.exit(0);
}

if (mode === 'noop') await sluice({ name: 'noop', concurrency: CONCURRENCY, run: () => Promise.resolve(null) });
else if (mode === 'usertable') {
  const row = (): Record<string, unknown> => ({ ent_list_str: 'Ada Lovelace,Alan Turing', mapped_list_str: '17,42' });
  await sluice(
    { name: 'noop', concurrency: CONCURRENCY, run: () => Promise.resolve(null) },
    {
      table: 'bench_user_results',
      key: 'doc_id',
      columns: ['ent_list_str', 'mapped_list_str'],
      row,
      onConflict: 'keep',
      mergeKeys: false,
    },
  );
} else if (mode === 'sleep')
  await sluice({ name: 'wait', concurrency: CONCURRENCY, run: () => new Promise((r) => setTimeout(r, 20)) });
else await bullmq();
