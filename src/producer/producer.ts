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
import { displayKey, typedKey } from '../user-tables/key-shape.js';
import type { SourceInfo } from '../user-tables/table-info.js';
import { producerDbCall, type DbCall } from './db-retry.js';
import type { Skip } from './encode.js';
import type { ProgressSink } from './progress.js';
import { publishAll, type PublishCounts, type PublishRun } from './publish.js';
import {
  accept,
  countStale,
  prepareRecompute,
  stageVersions,
  stalePages,
  type RecomputeOptions,
  type RecomputeSummary,
  type StaleRun,
} from './recompute.js';
import { markStagesPresent, type StageVersionInfo } from '../ledger/stage-versions.js';
import { UsageError } from '../core/errors.js';
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
  /** Only source rows this SQL condition selects, besides `source.where` (--where; the operator's own SQL). */
  where?: string;
  /** After the pending tasks, the stale done ones (--recompute). */
  recompute?: RecomputeOptions;
  /** Only these tasks, as a person typed their keys (--keys-file: one key a line; `label` names the file). */
  typedKeys?: { label: string; lines: readonly string[] };
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
  /** What --recompute found, published or accepted (absent without it). */
  recompute?: RecomputeSummary;
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
    const source = narrowed(await checkPipelineTables(pool, pipeline), opts.where);
    if (opts.typedKeys !== undefined)
      opts = { ...opts, keys: [...(opts.keys ?? []), ...typedKeys(source, opts.typedKeys)] };
    const ledger = await ledgerId(pool);
    began = true;
    const staleRun = opts.recompute === undefined ? undefined : recomputeRun(opts, pipeline, pool, source, log);
    if (opts.recompute?.accept !== undefined && opts.dryRun === true)
      throw new UsageError(
        '--accept changes the ledger; it has no dry run (--recompute --dry-run shows what is stale)',
      );
    if (opts.recompute?.accept !== undefined && staleRun !== undefined) {
      summary.recompute = {
        stale: 0,
        groups: [],
        checkedByIndex: false,
        accepted: 0,
        acceptedStage: opts.recompute.accept,
      };
      summary.recompute.accepted = await accept(staleRun, stageVersion(pipeline, opts.recompute.accept));
      log.info({ stage: opts.recompute.accept, accepted: summary.recompute.accepted }, 'stage version accepted');
      return finish();
    }
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
    const run: Run = {
      opts,
      pipeline,
      log,
      pool,
      source,
      filter,
      ledger,
      summary,
      db: producerDbCall(config.database, log),
    };
    if (staleRun !== undefined) summary.recompute = await findStale(staleRun, opts.dryRun === true);
    if (opts.dryRun !== true) await publish(run, staleRun);
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

/** The keys of a --keys-file, each as its canonical text; the first that is no key of this source is an error. */
function typedKeys(source: SourceInfo, file: { label: string; lines: readonly string[] }): string[] {
  const keys: string[] = [];
  for (const [i, line] of file.lines.entries()) {
    if (line.trim() === '') continue;
    const typed = typedKey(source, [line]);
    if ('error' in typed) throw new UsageError(`${file.label}:${i + 1}: key ${JSON.stringify(line)}: ${typed.error}`);
    keys.push(typed.text);
  }
  return keys;
}

/** The source as this run reads it: only the rows --where selects too. */
function narrowed(source: SourceInfo, where: string | undefined): SourceInfo {
  if (where === undefined) return source;
  // The operator's own SQL, as trusted as source.where, held to the same rules; a `?` would take a bound value's place.
  if (where.trim() === '' || where.includes(';') || where.includes('?'))
    throw new UsageError(
      `--where must be one SQL condition on ${source.table}'s columns, without ';' or '?': ` +
        `got ${JSON.stringify(where)}`,
      `for example: --where "created_at >= '2026-11-01'"`,
    );
  return { ...source, where: source.where === undefined ? where : `(${source.where}) AND (${where})` };
}

function stageVersion(pipeline: PipelineConfig, name: string): StageVersionInfo {
  const stage = pipeline.stages.find((s) => s.name === name);
  if (stage === undefined)
    throw new UsageError(
      `no stage '${name}' in pipeline ${pipeline.name}`,
      `stages: ${pipeline.stages.map((s) => s.name).join(', ')}`,
    );
  return { name: stage.name, version: stage.version };
}

function recomputeRun(
  opts: ProduceOptions,
  pipeline: PipelineConfig,
  pool: Pool,
  source: SourceInfo,
  log: Logger,
): StaleRun & { rate?: number } {
  const r = opts.recompute!;
  if (r.fromStage !== undefined) stageVersion(pipeline, r.fromStage);
  return {
    pool,
    db: producerDbCall(opts.config.database, log),
    source,
    narrowed: opts.where !== undefined,
    rate: r.ratePerSecond,
    filter: {
      pipeline: opts.pipeline,
      stages: stageVersions(pipeline),
      ...(r.fromStage === undefined ? {} : { fromStage: r.fromStage }),
      includeOffline: r.includeOffline === true,
      staleAfterMs: opts.all === true ? null : (opts.staleAfterMs ?? opts.config.producer.staleAfterMs),
      ...(opts.keys === undefined ? {} : { keys: opts.keys }),
    },
  };
}

/** The first check from the indexes; on a dry run, the count per stage and version. */
async function findStale(r: StaleRun, dryRun: boolean): Promise<RecomputeSummary> {
  const needed = await prepareRecompute(r);
  const summary: RecomputeSummary = { stale: 0, groups: [], checkedByIndex: !needed, accepted: 0 };
  if (needed && dryRun) {
    summary.groups = await countStale(r);
    summary.stale = summary.groups.reduce((n, g) => n + g.tasks, 0);
    if (summary.stale === 0) await settleStages(r);
  }
  return summary;
}

/**
 * After a pass over every done task that found none stale, no task lacks an added stage any more: recorded, so that the
 * next first check answers from the indexes again (ledger/stage-versions.ts markStagesPresent).
 */
async function settleStages(r: StaleRun): Promise<void> {
  const f = r.filter;
  if (f.keys !== undefined || f.fromStage !== undefined || r.narrowed === true) return;
  await r.db('recording that every done task has every stage', () => markStagesPresent(r.pool, f.pipeline, f.stages));
}

async function publish(r: Run, stale?: StaleRun & { rate?: number }): Promise<void> {
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
    const pass = {
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
      onSkip: (skip: Skip) => recordSkip(log, summary, { ...skip, key: displayKey(r.source, skip.key) }),
    };
    // Fresh tasks first, then the stale ones (paced by --rate): a recompute never goes ahead of new work.
    if (opts.recompute?.staleOnly !== true) await publishPending(pass, counts);
    if (stale !== undefined && summary.recompute?.checkedByIndex === false && opts.shutdown?.stopping.aborted !== true)
      await publishStale(pass, stale, counts, summary.recompute, log);
    summary.interrupted = opts.shutdown?.stopping.aborted === true;
  } finally {
    Object.assign(summary, counts);
    await producer.disconnect().catch((err: unknown) => log.warn({ err }, 'producer disconnect failed'));
  }
}

async function publishStale(
  pass: PublishRun,
  stale: StaleRun & { rate?: number },
  counts: PublishCounts,
  summary: RecomputeSummary,
  log: Logger,
): Promise<void> {
  const before = counts.published;
  const found = counts.found;
  try {
    await publishAll(
      {
        ...pass,
        pages: () => stalePages(stale),
        ...(stale.rate === undefined ? {} : { ratePerSecond: stale.rate }),
        progress: { total: null, sink: pass.progress.sink },
        limit: pass.limit - counts.published,
      },
      counts,
    );
  } finally {
    summary.stale = counts.found - found;
    log.info({ stale: summary.stale, published: counts.published - before }, 'stale tasks published');
  }
  if (summary.stale === 0 && pass.shutdown?.stopping.aborted !== true) await settleStages(stale);
}

/** Keys (a requeue, --keys-file) looked up per page query: each query names a slice of them, not all. */
const KEYS_PER_QUERY = 1000;

async function publishPending(pass: PublishRun, counts: PublishCounts): Promise<void> {
  const keys = pass.filter.keys;
  if (keys === undefined || keys.length <= KEYS_PER_QUERY) return publishAll(pass, counts);
  for (let i = 0; i < keys.length && pass.shutdown?.stopping.aborted !== true; i += KEYS_PER_QUERY)
    await publishAll({ ...pass, filter: { ...pass.filter, keys: keys.slice(i, i + KEYS_PER_QUERY) } }, counts);
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
