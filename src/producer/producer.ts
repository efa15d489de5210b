// `produce`: page every pending task out of the database and publish it to Kafka, then record the dispatch.
//
// Flow: check the tables -> count (optional) -> claim and ensure the topic (topic.ts) -> publish (publish.ts:
// pages, encode.ts, batches, sends, dispatch-recorder.ts). The database is never told about a task before
// Kafka has it, so a crash anywhere leaves at worst a duplicate for the next run, never a task marked in flight
// that was not sent.

import { randomUUID } from 'node:crypto';
import { Partitioners } from 'kafkajs';
import { getPipeline, type PipelineConfig, type SluiceConfig } from '../config/config.js';
import { childLogger, type Logger } from '../core/logger.js';
import type { Shutdown } from '../core/shutdown.js';
import { assertMigrated } from '../db/migrate.js';
import { usePool, type Pool } from '../db/pool.js';
import { kafkaRetry } from '../kafka/client.js';
import type { SharedKafka } from '../kafka/lag.js';
import { estimateCounts, exactCounts, type PipelineCounts } from '../ledger/counts.js';
import { ledgerId } from '../ledger/ledger-id.js';
import { probeLedger, type PendingFilter } from '../ledger/pending.js';
import { checkPipelineTables } from '../user-tables/pipeline-tables.js';
import { displayKey } from '../user-tables/key-shape.js';
import type { SourceInfo } from '../user-tables/table-info.js';
import { producerDbCall, type DbCall } from './db-retry.js';
import type { Skip } from './encode.js';
import type { ProgressSink } from './progress.js';
import { publishAll, type PublishCounts } from './publish.js';
import { ownKafka, prepareTopic } from './topic.js';

const KEPT_SKIPS = 100;

export interface ProduceOptions {
  config: SluiceConfig;
  pipeline: string;
  log: Logger;
  shutdown?: Shutdown;
  /** Overrides producer.staleAfterMs. */
  staleAfterMs?: number;
  /** Publish tasks in flight too (ignore dispatch records). */
  all?: boolean;
  /** Publish quarantined tasks too, and take them out of quarantine. */
  retryQuarantined?: boolean;
  /** @deprecated The name of `retryQuarantined` before 2026-12: still accepted. */
  retryDead?: boolean;
  /** Count only; publish nothing. */
  dryRun?: boolean;
  /** Publish at most this many tasks. */
  limit?: number;
  /** Publish only these of the pending tasks (canonical key text): the ones a requeue just released. */
  keys?: readonly string[];
  /** Run the count query for totals, in-flight and ETA (default true). */
  count?: boolean;
  progress?: ProgressSink;
  /** Called after each batch Kafka acknowledged. */
  onBatch?: (batch: { messages: number; bytes: number }) => void;
  /** The process's one pool, when it has one (the dashboard's requeue): kept open. */
  pool?: Pool;
  /** The process's one Kafka client and admin (the dashboard's): kept connected. */
  kafka?: SharedKafka;
}

export interface SkippedTask {
  key: string;
  reason: string;
}

export interface ProduceSummary {
  runId: string;
  pipeline: string;
  topic: string;
  counts: PipelineCounts | null;
  /** Whether `counts` come from the semi-join (--dry-run) or from the ledger tables (see ledger/counts.ts). */
  countsExact: boolean;
  /** Tasks this run found pending: published + skipped. */
  found: number;
  published: number;
  recorded: number;
  requeuedQuarantined: number;
  /** @deprecated The name `requeuedQuarantined` had before 2026-12, kept for scripts that read it. */
  requeuedDead: number;
  skipped: { tooLarge: number; unserialisable: number; emptyKey: number };
  /** The first skipped tasks with their reasons (all of them are also logged). */
  skippedTasks: SkippedTask[];
  batches: number;
  batchLimitBytes: number;
  /** The topic's partition count, as the producer found it. */
  partitions: number;
  seconds: number;
  rate: number;
  interrupted: boolean;
  dryRun: boolean;
}

export async function produce(opts: ProduceOptions): Promise<ProduceSummary> {
  const { config } = opts;
  const pipeline = getPipeline(config, opts.pipeline);
  const log = childLogger(opts.log, { component: 'producer', pipeline: opts.pipeline });
  const summary = emptySummary(randomUUID(), opts, pipeline.topic);
  const started = performance.now();
  /** Past the start-up checks: from here on, the run ends with a summary line whatever happens. */
  let began = false;
  const finish = (): ProduceSummary => {
    summary.seconds = (performance.now() - started) / 1000;
    summary.rate = summary.seconds > 0 ? summary.published / summary.seconds : 0;
    summary.requeuedDead = summary.requeuedQuarantined;
    return summary;
  };
  const { pool, release } = await usePool(config.database, opts.pool);
  try {
    await assertMigrated(pool);
    const source = await checkPipelineTables(pool, pipeline);
    const ledger = await ledgerId(pool);
    began = true;
    const filter: PendingFilter = await probeLedger(pool, {
      pipeline: opts.pipeline,
      staleAfterMs: opts.all === true ? null : (opts.staleAfterMs ?? config.producer.staleAfterMs),
      includeQuarantined: opts.retryQuarantined === true || opts.retryDead === true,
      keys: opts.keys,
    });
    await countPending(
      pool,
      source,
      filter,
      opts,
      summary,
      pipeline.stages.map((s) => s.name),
    );
    if (summary.counts !== null)
      log.info({ runId: summary.runId, ...summary.counts, exact: summary.countsExact }, 'pending tasks counted');
    if (opts.dryRun !== true)
      await publish({
        opts,
        pipeline,
        log,
        pool,
        source,
        filter,
        ledger,
        summary,
        db: producerDbCall(config.database, log),
      });
    return finish();
  } finally {
    finish();
    if (began) logSummary(log, summary);
    await release();
  }
}

function emptySummary(runId: string, opts: ProduceOptions, topic: string): ProduceSummary {
  return {
    runId,
    pipeline: opts.pipeline,
    topic,
    counts: null,
    countsExact: false,
    found: 0,
    published: 0,
    recorded: 0,
    requeuedQuarantined: 0,
    requeuedDead: 0,
    skipped: { tooLarge: 0, unserialisable: 0, emptyKey: 0 },
    skippedTasks: [],
    batches: 0,
    batchLimitBytes: 0,
    partitions: 0,
    seconds: 0,
    rate: 0,
    interrupted: false,
    dryRun: opts.dryRun === true,
  };
}

async function countPending(
  pool: Pool,
  source: SourceInfo,
  filter: PendingFilter,
  opts: ProduceOptions,
  summary: ProduceSummary,
  stages: string[],
): Promise<void> {
  if (opts.dryRun === true) {
    summary.counts = await exactCounts(pool, source, filter);
    summary.countsExact = true;
  } else if (opts.count !== false) {
    // Each run takes a new snapshot of the whole-table counts: status and the dashboard build on it.
    summary.counts = await estimateCounts(pool, source, filter, stages, { refresh: true });
  }
}

interface Run {
  opts: ProduceOptions;
  pipeline: PipelineConfig;
  log: Logger;
  pool: Pool;
  source: SourceInfo;
  filter: PendingFilter;
  ledger: string;
  summary: ProduceSummary;
  db: DbCall;
}

async function publish(r: Run): Promise<void> {
  const { opts, pipeline, log, summary } = r;
  const { config } = opts;
  const kafka = opts.kafka ?? (await ownKafka(config, opts.pipeline, log));
  const topic = await prepareTopic(
    kafka,
    { config, pipelineName: opts.pipeline, pipeline, ledger: r.ledger, own: opts.kafka === undefined },
    log,
  );
  summary.batchLimitBytes = topic.batchLimitBytes;
  summary.partitions = topic.partitions;
  const producer = kafka.client.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    // Sized to outlast a leader change (docs/operations.md, "Running beside production"): a send is retried
    // for longer than the cluster takes to notice a dead broker and move its partitions.
    retry: kafkaRetry(config.kafka, 1),
  });
  await producer.connect();
  const counts: PublishCounts = { found: 0, published: 0, recorded: 0, requeuedQuarantined: 0, batches: 0 };
  try {
    await publishAll(
      {
        config,
        pipelineName: opts.pipeline,
        log,
        db: r.db,
        pool: r.pool,
        source: r.source,
        filter: r.filter,
        producer,
        topic: summary.topic,
        encoder: { ledger: r.ledger, runId: summary.runId, shape: pipeline.source.payload, ...topic },
        limit: opts.limit ?? Number.POSITIVE_INFINITY,
        shutdown: opts.shutdown,
        progress: { total: summary.counts?.pending ?? null, sink: opts.progress },
        onBatch: opts.onBatch,
        // Listed and logged as people read keys (a UUID key with dashes).
        onSkip: (skip) => recordSkip(log, summary, { ...skip, key: displayKey(r.source, skip.key) }),
      },
      counts,
    );
    summary.interrupted = opts.shutdown?.stopping.aborted === true;
  } finally {
    Object.assign(summary, counts);
    await producer.disconnect().catch((err: unknown) => log.warn({ err }, 'producer disconnect failed'));
  }
}

function recordSkip(log: Logger, summary: ProduceSummary, s: Skip): void {
  summary.skipped[s.skip]++;
  if (summary.skippedTasks.length < KEPT_SKIPS) summary.skippedTasks.push({ key: s.key, reason: s.reason });
  log.error({ key: s.key, reason: s.reason }, 'task skipped');
}

function logSummary(log: Logger, summary: ProduceSummary): void {
  log.info(
    {
      runId: summary.runId,
      published: summary.published,
      recorded: summary.recorded,
      requeuedQuarantined: summary.requeuedQuarantined,
      skippedTooLarge: summary.skipped.tooLarge,
      skippedUnserialisable: summary.skipped.unserialisable,
      skippedEmptyKey: summary.skipped.emptyKey,
      inFlight: summary.counts?.inFlight ?? null,
      seconds: Number(summary.seconds.toFixed(3)),
      rate: Math.round(summary.rate),
      interrupted: summary.interrupted,
    },
    'produce finished',
  );
}
