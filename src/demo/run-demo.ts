// The main job end to end on the demo data set: seed, start the simulated entity-recognition service,
// produce, then fetch and work in this process until every document is done or quarantined.

import { sleep } from '../core/sleep.js';
import type { RowDataPacket } from 'mysql2/promise';
import { getPipeline, type SluiceConfig } from '../core/config.js';
import type { Logger } from '../core/logger.js';
import type { Shutdown } from '../core/shutdown.js';
import { DEMO_MIGRATIONS_DIR, migrate } from '../db/migrate.js';
import { openPool } from '../db/pool.js';
import { startFetcher } from '../fetcher/fetcher.js';
import { produce } from '../producer/producer.js';
import { startWorker } from '../worker/worker.js';
import { startNerService, type NerStats } from './ner-service.js';
import { seedDemo } from './seed.js';
import { demoPipeline, demoResults } from './stages.js';

export interface DemoOptions {
  config: SluiceConfig;
  log: Logger;
  documents: number;
  nerConcurrency?: number;
  nerMaxConcurrent?: number;
  shutdown?: Shutdown;
  /** Progress lines (stderr in the CLI). */
  progress?: (line: string) => void;
  /** Give up when nothing finishes for this long. @defaultValue 120000 */
  stallMs?: number;
}

export interface DemoSummary {
  documents: number;
  done: number;
  quarantined: number;
  seconds: number;
  published: number;
  /** Results the "offline run" had left in the result table before produce (not published). */
  offline: number;
  retries: number;
  milestones: Record<string, number>;
  ner: NerStats;
  nerConcurrency: number;
  nerMaxConcurrent: number;
  completed: boolean;
}

export async function runDemo(opts: DemoOptions): Promise<DemoSummary> {
  const t0 = performance.now();
  // The demo's own tables: never created by `sluice migrate` in a user's database, only here.
  await migrate(opts.config.database, opts.log.child({ component: 'migrate' }), DEMO_MIGRATIONS_DIR);
  const pool = await openPool(opts.config.database, { poolSize: 2 });
  const nerMaxConcurrent = opts.nerMaxConcurrent ?? 8;
  const nerConcurrency = opts.nerConcurrency ?? 6;
  const ner = await startNerService({ maxConcurrent: nerMaxConcurrent });
  const demo = demoPipeline({ databaseUrl: opts.config.database.url, nerUrl: ner.url, nerConcurrency });
  try {
    const seeded = await seedDemo(pool, opts.documents);
    opts.log.info({ inserted: seeded.inserted, documents: opts.documents, offline: seeded.offline }, 'demo data seeded');
    const base = getPipeline(opts.config, 'demo');
    const config: SluiceConfig = {
      ...opts.config,
      pipelines: { ...opts.config.pipelines, demo: { ...base, stages: demo.stages, results: demoResults } },
    };
    // Anything not done yet is published again (a crashed earlier demo leaves tasks "in flight").
    const produced = await produce({ config, pipeline: 'demo', log: opts.log, staleAfterMs: 0, shutdown: opts.shutdown });
    const fetcher = await startFetcher({ config, pipeline: 'demo', log: opts.log });
    const worker = await startWorker({ config, pipeline: 'demo', log: opts.log });
    const count = async (): Promise<{ done: number; dead: number }> => {
      const [[r]] = await pool.query<RowDataPacket[]>(
        `SELECT (SELECT COUNT(*) FROM sluice_demo_doc_ent_map x JOIN sluice_demo_documents d ON x.doc_id = d.id WHERE d.id <= ?) AS done,
                (SELECT COUNT(*) FROM sluice_dead_tasks x JOIN sluice_demo_documents d ON x.task_key = CONVERT(d.id USING utf8mb4) WHERE x.pipeline = 'demo' AND d.id <= ?) AS dead`,
        [opts.documents, opts.documents],
      );
      return { done: Number(r?.done), dead: Number(r?.dead) };
    };
    let last = await count();
    let lastChange = performance.now();
    let completed = false;
    for (;;) {
      if (last.done + last.dead >= opts.documents) {
        completed = true;
        break;
      }
      if (opts.shutdown?.stopping.aborted === true || performance.now() - lastChange > (opts.stallMs ?? 120_000)) break;
      await sleep(500);
      const now = await count();
      if (now.done + now.dead !== last.done + last.dead) lastChange = performance.now();
      last = now;
      const s = ner.stats();
      opts.progress?.(`demo: ${last.done}/${opts.documents} done, ${last.dead} quarantined; ner calls ${s.requests}, resets ${s.resetsOverLimit + s.resetsRandom}`);
    }
    await worker.stop();
    await fetcher.stop();
    const [retries] = await pool.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM sluice_attempts WHERE pipeline = 'demo'");
    const [ms] = await pool.query<RowDataPacket[]>("SELECT stage, COUNT(*) AS n FROM sluice_milestones WHERE pipeline = 'demo' GROUP BY stage");
    return {
      documents: opts.documents,
      done: last.done,
      quarantined: last.dead,
      seconds: (performance.now() - t0) / 1000,
      published: produced.published,
      offline: seeded.offline,
      retries: Number(retries[0]?.n ?? 0),
      milestones: Object.fromEntries(ms.map((r) => [String(r.stage), Number(r.n)])),
      ner: ner.stats(),
      nerConcurrency,
      nerMaxConcurrent,
      completed,
    };
  } finally {
    await demo.close();
    await ner.close();
    await pool.end();
  }
}
