// The main job end to end on the demo data set: seed, start the simulated entity-recognition service,
// produce, then fetch and work in this process until every document is done or quarantined.

import { sleep } from '../core/sleep.js';
import type { RowDataPacket } from 'mysql2/promise';
import { quarantinedUpTo, runSummary } from '../ledger/run-summary.js';
import { getPipeline, resolveStage, type SluiceConfig } from '../config/config.js';
import { childLogger, type Logger } from '../core/logger.js';
import type { Shutdown } from '../core/shutdown.js';
import { DEMO_MIGRATIONS_DIR, migrate } from '../db/migrate.js';
import { openPool, type Pool } from '../db/pool.js';
import { startFetcher, type FetcherHandle } from '../fetcher/fetcher.js';
import type { StageMetrics } from '../core/metrics.js';
import { produce } from '../producer/producer.js';
import { startWorker, type WorkerHandle } from '../worker/worker.js';
import { startNerService, type NerService, type NerStats } from './ner-service.js';
import { seedDemo } from './seed.js';
import { DEMO_RESOURCE, demoPipeline, demoResource, demoResults } from './stages.js';

export interface DemoOptions {
  config: SluiceConfig;
  log: Logger;
  documents: number;
  /** A fixed per-process limit on the ner stage instead of the learned fleet-wide one. */
  nerConcurrency?: number;
  /** The service's parallel slots. @defaultValue 8 */
  nerSlots?: number;
  /** Worker instances sharing the resource. @defaultValue 2 */
  workers?: number;
  shutdown?: Shutdown;
  /** Progress lines (stderr in the CLI). */
  progress?: (line: string) => void;
  /** Give up when nothing finishes for this long. @defaultValue 120000 */
  stallMs?: number;
  /** Stage counters (the terminal panel). */
  metrics?: StageMetrics;
  /** Called once the workers and the fetcher run (the terminal panel watches them). */
  onStarted?: (parts: { workers: WorkerHandle[]; fetcher: FetcherHandle; ner: NerService }) => void;
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
  /** The per-process limit, or null when the learned fleet-wide one was used. */
  nerConcurrency: number | null;
  workers: number;
  /** The learned limit at the end (null with a fixed per-process limit). */
  learnedLimit: number | null;
  completed: boolean;
}

interface Progress {
  done: number;
  quarantined: number;
}

/** The demo's documents done or quarantined so far (the first `opts.documents` of the table). */
async function countDone(pool: Pool, documents: number): Promise<Progress> {
  const [[r]] = await pool.query<RowDataPacket[]>(
    'SELECT COUNT(*) AS done FROM sluice_demo_doc_ent_map x JOIN sluice_demo_documents d ON x.doc_id = d.id ' +
      'WHERE d.id <= ?',
    [documents],
  );
  const source = { table: 'sluice_demo_documents', key: 'id' };
  return { done: Number(r?.done), quarantined: await quarantinedUpTo(pool, 'demo', source, documents) };
}

/** Polls until every document is done or quarantined, a stop, or nothing moved for `stallMs`. */
async function waitForTheEnd(
  pool: Pool,
  opts: DemoOptions,
  ner: NerService,
): Promise<{ last: Progress; completed: boolean }> {
  let last = await countDone(pool, opts.documents);
  let lastChange = performance.now();
  for (;;) {
    if (last.done + last.quarantined >= opts.documents) return { last, completed: true };
    const stalled = performance.now() - lastChange > (opts.stallMs ?? 120_000);
    if (opts.shutdown?.stopping.aborted === true || stalled) return { last, completed: false };
    await sleep(500);
    const now = await countDone(pool, opts.documents);
    if (now.done + now.quarantined !== last.done + last.quarantined) lastChange = performance.now();
    last = now;
    const s = ner.stats();
    opts.progress?.(
      `demo: ${last.done}/${opts.documents} done, ${last.quarantined} quarantined; ner calls ${s.requests}, ` +
        `in service ${s.inService}/${s.slots} slots, resets ${s.resetsOverLimit + s.resetsRandom}`,
    );
  }
}

export async function runDemo(opts: DemoOptions): Promise<DemoSummary> {
  const t0 = performance.now();
  // The demo's own tables: never created by `sluice migrate` in a user's database, only here.
  await migrate(opts.config.database, childLogger(opts.log, { component: 'migrate' }), DEMO_MIGRATIONS_DIR);
  // One pool for the whole demo process, as for any process of sluice (docs/operations.md, "Connections").
  const pool = await openPool(opts.config.database);
  const ner = await startNerService({ slots: opts.nerSlots ?? 8 });
  const demo = demoPipeline({
    databaseUrl: opts.config.database.url,
    nerUrl: ner.url,
    nerConcurrency: opts.nerConcurrency,
  });
  const workers = opts.workers ?? 2;
  // Stopped before the pool they share ends, however the demo ends.
  const started: Array<{ stop(): Promise<unknown> }> = [];
  try {
    const seeded = await seedDemo(pool, opts.documents);
    opts.log.info(
      { inserted: seeded.inserted, documents: opts.documents, offline: seeded.offline },
      'demo data seeded',
    );
    const base = getPipeline(opts.config, 'demo');
    const config: SluiceConfig = {
      ...opts.config,
      resources: { [DEMO_RESOURCE]: demoResource, ...opts.config.resources },
      pipelines: {
        ...opts.config.pipelines,
        demo: { ...base, stages: demo.stages.map(resolveStage), results: demoResults },
      },
    };
    // Anything not done yet is published again (a crashed earlier demo leaves tasks "in flight").
    const produced = await produce({
      config,
      pipeline: 'demo',
      log: opts.log,
      staleAfterMs: 0,
      shutdown: opts.shutdown,
      pool,
    });
    const fetcher = await startFetcher({ config, pipeline: 'demo', log: opts.log, pool });
    started.push(fetcher);
    // Several workers, each with its own share of the resource, as separate processes would have: together
    // they stay within the learned limit. They share the process's pool.
    const all = await Promise.all(
      Array.from({ length: workers }, async (_, i) => {
        const w = await startWorker({
          config,
          pipeline: 'demo',
          log: opts.log,
          workerId: `demo-${i + 1}`,
          metrics: opts.metrics,
          pool,
        });
        started.push(w);
        return w;
      }),
    );
    opts.onStarted?.({ workers: all, fetcher, ner });
    const { last, completed } = await waitForTheEnd(pool, opts, ner);
    // The learned limit is read while the workers still run (a last renewal of the leader would move it); the
    // counts once they have stopped and written everything.
    const { learnedLimit } = await runSummary(pool, 'demo', DEMO_RESOURCE);
    await Promise.all(all.map((w) => w.stop()));
    await fetcher.stop();
    const summary = await runSummary(pool, 'demo', DEMO_RESOURCE);
    return {
      documents: opts.documents,
      done: last.done,
      quarantined: last.quarantined,
      seconds: (performance.now() - t0) / 1000,
      published: produced.published,
      offline: seeded.offline,
      retries: summary.retries,
      milestones: summary.milestones,
      ner: ner.stats(),
      nerConcurrency: opts.nerConcurrency ?? null,
      workers,
      learnedLimit: opts.nerConcurrency === undefined ? learnedLimit : null,
      completed,
    };
  } finally {
    await Promise.allSettled(started.map((s) => s.stop()));
    await demo.close();
    await ner.close();
    await pool.end();
  }
}
