// `produce`: page every pending task out of the database and publish it to Kafka, then record the dispatch.
//
// Flow: count (optional) -> ensure topic -> [page N+1 is fetched while page N is encoded and sent] ->
// batches of at most `batchBytes` -> send (acks=all, idempotent) -> dispatch rows for the acknowledged batch.
// The database is never told about a task before Kafka has it, so a crash anywhere leaves at worst
// a duplicate for the next run, never a task marked in flight that was not sent.

import { randomUUID } from 'node:crypto';
import { CompressionTypes, Partitioners, type Producer } from 'kafkajs';
import { UnacknowledgedError, partitionOf, sendAcknowledged, type Acknowledged } from './acked-send.js';
import { getPipeline, type SluiceConfig } from '../core/config.js';
import { DatabaseError, KafkaError, coerceError } from '../core/errors.js';
import { keyProblem } from '../core/envelope.js';
import type { Logger } from '../core/logger.js';
import type { Shutdown } from '../core/shutdown.js';
import { recordDispatches, releaseDead } from '../db/dispatches.js';
import { assertMigrated } from '../db/migrate.js';
import { estimateCounts, exactCounts, type PipelineCounts } from '../db/counts.js';
import { fetchPendingPage, probeLedger, type PendingFilter, type PendingRow } from '../db/pending.js';
import { usePool, type Pool } from '../db/pool.js';
import { withDbRetries } from '../db/db-errors.js';
import type { RetryPolicy } from '../core/retry.js';
import { inspectPipeline } from '../db/pipeline-tables.js';
import { ledgerId } from '../db/ledger-id.js';
import { claimNames, pipelineClaims } from '../kafka/ledger-claims.js';
import { sourceQueryError, type SourceInfo } from '../db/source.js';
import { checkKafka, createKafka, kafkaFailure, kafkaRetry, retryKafka } from '../kafka/client.js';
import type { SharedKafka } from '../kafka/lag.js';
import { ensureTopic, topicMaxMessageBytes, topicSpec } from '../kafka/topics.js';
import { BatchSender, messageSize, type OutgoingMessage } from './batch-sender.js';
import { envelopeEncoder, ENVELOPE_VERSION, payloadFromRow } from '../core/envelope.js';
import { Progress, type ProgressSink } from './progress.js';
import { run } from '../core/hints.js';

/** Record-batch header (61 bytes) plus slack: the batch limit must stay under the topic's max.message.bytes. */
const BATCH_HEADROOM = 128;
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
  /** Whether `counts` come from the semi-join (--dry-run) or from the ledger tables (see db/counts.ts). */
  countsExact: boolean;
  /** Tasks this run found pending: published + skipped. */
  found: number;
  published: number;
  recorded: number;
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

/** A produce run waits out a short outage (about 3.5 s), then reports it: a rerun picks up where it stopped. */
const PRODUCER_DB_POLICY: RetryPolicy = { maxAttempts: 4, initialDelayMs: 500, maxDelayMs: 2000, jitter: 'none' };

async function withDbRetry<T>(what: string, fn: () => Promise<T>, log: Logger, url: string, timeoutMs: number): Promise<T> {
  try {
    return await withDbRetries(fn, {
      databaseUrl: url,
      timeoutMs,
      policy: PRODUCER_DB_POLICY,
      onRetry: (err, attempt, delayMs) => log.warn({ err, attempt, delayMs, what }, 'database call failed; retrying'),
    });
  } catch (err) {
    if (err instanceof DatabaseError && err.code === 'DB_ERROR') throw new DatabaseError('DB_ERROR', `${what}: ${err.message}`, { cause: err.cause });
    throw err;
  }
}

export async function produce(opts: ProduceOptions): Promise<ProduceSummary> {
  const { config, log: rootLog } = opts;
  const pipeline = getPipeline(config, opts.pipeline);
  const log = rootLog.child({ component: 'producer', pipeline: opts.pipeline });
  const runId = randomUUID();
  const started = performance.now();
  const summary: ProduceSummary = {
    runId,
    pipeline: opts.pipeline,
    topic: pipeline.topic,
    counts: null,
    countsExact: false,
    found: 0,
    published: 0,
    recorded: 0,
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
  /** Past the start-up checks: from here on, the run ends with a summary line whatever happens. */
  let began = false;
  const finish = (): ProduceSummary => {
    summary.seconds = (performance.now() - started) / 1000;
    summary.rate = summary.seconds > 0 ? summary.published / summary.seconds : 0;
    return summary;
  };

  const { pool, release } = await usePool(config.database, opts.pool);
  try {
    await assertMigrated(pool);
    const source = await inspectPipeline(pool, pipeline, opts.pipeline);
    const ledger = await ledgerId(pool);
    began = true;
    const filter: PendingFilter = await probeLedger(pool, {
      pipeline: opts.pipeline,
      staleAfterMs: opts.all === true ? null : (opts.staleAfterMs ?? config.producer.staleAfterMs),
      includeDead: opts.retryDead === true,
      keys: opts.keys,
    });
    if (opts.dryRun === true) {
      summary.counts = await exactCounts(pool, source, filter);
      summary.countsExact = true;
    } else if (opts.count !== false) {
      // Each run takes a new snapshot of the whole-table counts: status and the dashboard build on it.
      summary.counts = await estimateCounts(pool, source, filter, pipeline.stages.map((s) => s.name), { refresh: true });
    }
    if (summary.counts !== null) log.info({ runId, ...summary.counts, exact: summary.countsExact }, 'pending tasks counted');
    if (opts.dryRun === true) return finish();

    const kafka = opts.kafka ?? (await ownKafka(opts, log));
    const topic = await prepareTopic(kafka, opts, ledger, log);
    summary.batchLimitBytes = topic.batchLimitBytes;
    summary.partitions = topic.partitions;
    const producer = kafka.client.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
      // Sized to outlast a leader change (README "Running beside production"): a send is retried for longer
      // than the cluster takes to notice a dead broker and move its partitions.
      retry: kafkaRetry(config.kafka, 1),
    });
    await producer.connect();
    try {
      await publishAll({ opts, log, pool, source, filter, producer, summary, ledger });
    } finally {
      await producer.disconnect().catch((err: unknown) => log.warn({ err }, 'producer disconnect failed'));
    }
    return finish();
  } finally {
    finish();
    if (began) logSummary(log, summary);
    await release();
  }
}

/** A produce run of its own (the CLI): checks the brokers answer, then makes a client whose admin lives for one call. */
async function ownKafka(opts: ProduceOptions, log: Logger): Promise<SharedKafka> {
  await checkKafka(opts.config.kafka, log);
  const client = createKafka(opts.config.kafka, opts.log.child({ component: 'kafka', pipeline: opts.pipeline }));
  return { client, admin: async () => client.admin() };
}

/** Makes sure the topic exists; returns its partition count and the batch limit its max.message.bytes allows. */
async function prepareTopic(kafka: SharedKafka, opts: ProduceOptions, ledger: string, log: Logger): Promise<{ batchLimitBytes: number; partitions: number }> {
  const pipeline = getPipeline(opts.config, opts.pipeline);
  const admin = await kafka.admin();
  const own = opts.kafka === undefined;
  try {
    if (own) await admin.connect();
    // Claimed first: a deployment refused here has not touched the other one's topic. The group is checked
    // but left to the fetchers to claim (produce never joins it).
    return await retryKafka(opts.config.kafka, async () => {
      await claimNames(admin, ledger, pipelineClaims(opts.config, opts.pipeline, pipeline), log, { client: kafka.client, write: ['topic'] });
      const { partitions } = await ensureTopic(admin, pipeline.topic, topicSpec(pipeline), log);
      return { partitions, batchLimitBytes: Math.min(opts.config.producer.batchBytes, (await topicMaxMessageBytes(admin, pipeline.topic)) - BATCH_HEADROOM) };
    }, log, 'prepare topic');
  } catch (err) {
    throw kafkaFailure(err, `could not prepare topic ${pipeline.topic}`, `check the brokers (${run('doctor')}) and run produce again; nothing was published`);
  } finally {
    if (own) await admin.disconnect();
  }
}

function logSummary(log: Logger, summary: ProduceSummary): void {
  log.info(
      {
        runId: summary.runId,
        published: summary.published,
        recorded: summary.recorded,
        requeuedDead: summary.requeuedDead,
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

interface RunState {
  opts: ProduceOptions;
  log: Logger;
  pool: Pool;
  source: SourceInfo;
  filter: PendingFilter;
  producer: Producer;
  summary: ProduceSummary;
  ledger: string;
}

async function* pages(s: RunState): AsyncGenerator<PendingRow[]> {
  const { config } = s.opts;
  const size = config.producer.pageSize;
  const fetchPage = (after: string | undefined): Promise<PendingRow[]> =>
    withDbRetry('reading pending tasks', () => fetchPendingPage(s.pool, s.source, s.filter, after, size), s.log, config.database.url, config.database.connectTimeoutMs).catch(
      (err: unknown) => {
        throw sourceQueryError(err, s.source, s.opts.pipeline) ?? err;
      },
    );
  let next: Promise<PendingRow[]> | null = fetchPage(undefined);
  while (next !== null) {
    const rows: PendingRow[] = await next;
    if (rows.length === 0) return;
    // Read ahead: the database works on the next page while this one is encoded and sent.
    next = rows.length < size ? null : fetchPage(rows[rows.length - 1]!.keyText);
    next?.catch(() => {});
    yield rows;
  }
}

function skip(s: RunState, key: string, kind: keyof ProduceSummary['skipped'], reason: string): void {
  s.summary.skipped[kind]++;
  if (s.summary.skippedTasks.length < KEPT_SKIPS) s.summary.skippedTasks.push({ key, reason });
  s.log.error({ key, reason }, 'task skipped');
}

function rowPreview(row: Record<string, unknown>): string {
  try {
    const text = JSON.stringify(row, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : Buffer.isBuffer(v) ? `<${v.length} bytes>` : v));
    return text.length > 300 ? `${text.slice(0, 297)}...` : text;
  } catch {
    return '(row not printable)';
  }
}

/** How one page's rows become envelopes: the row's shape and the parts every task of the page shares. */
interface PageEncoder {
  shape: ((row: Record<string, unknown>) => unknown) | undefined;
  envelope: (key: string | number, payload: unknown, attempt: number) => string;
}

function pageEncoder(s: RunState, producedAt: string): PageEncoder {
  const { opts, summary } = s;
  return {
    shape: getPipeline(opts.config, opts.pipeline).source.payload,
    envelope: envelopeEncoder({ v: ENVELOPE_VERSION, pipeline: opts.pipeline, ledger: s.ledger, runId: summary.runId, producedAt }),
  };
}

function encode(s: RunState, row: PendingRow, enc: PageEncoder): OutgoingMessage | null {
  const { summary } = s;
  const problem = keyProblem(row.keyText);
  if (problem !== null) {
    // An empty key is a real row that cannot become a task; it is listed with its row so it can be fixed.
    if (row.keyText === '') skip(s, '', 'emptyKey', `${problem}: row ${rowPreview(row.row)}`);
    else skip(s, row.keyText.slice(0, 200), 'unserialisable', problem);
    return null;
  }
  let value: Buffer;
  try {
    const payload = enc.shape === undefined ? payloadFromRow(row.row) : enc.shape(row.row);
    // Encoded to bytes once here: kafkajs writes a Buffer as it is, and its length sizes the batch.
    value = Buffer.from(enc.envelope(row.key, payload, row.previousDispatches + 1), 'utf8');
  } catch (err) {
    skip(s, row.keyText, 'unserialisable', `payload cannot be serialised: ${coerceError(err).message}`);
    return null;
  }
  const size = messageSize(row.keyText, value);
  if (size > summary.batchLimitBytes) {
    skip(s, row.keyText, 'tooLarge', `message is ${size} bytes; the limit is ${summary.batchLimitBytes} (producer.batchBytes / the topic's max.message.bytes)`);
    return null;
  }
  return { key: row.keyText, value, size, keyText: row.keyText, dead: row.dead, partition: partitionOf(row.keyText, summary.partitions) };
}

async function publishAll(s: RunState): Promise<void> {
  const { opts, summary, log, pool, producer } = s;
  const { config } = opts;
  const compression = config.producer.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
  const progress = new Progress({ total: summary.counts?.pending ?? null, sink: opts.progress, log, intervalMs: config.producer.progressIntervalMs });
  // Dispatch writes trail the broker by at most two batches: they overlap the next sends, and the first
  // one that fails (after its retries) stops the run.
  let recording: Promise<void> = Promise.resolve();
  let recordsQueued = 0;
  let recordError: unknown = null;
  const record = async (acked: Acknowledged[]): Promise<void> => {
    await withDbRetry('recording dispatches', () => recordDispatches(pool, opts.pipeline, summary.runId, summary.topic, acked), log, config.database.url, config.database.connectTimeoutMs);
    summary.recorded += acked.length;
  };

  const send = async (batch: OutgoingMessage[], bytes: number): Promise<void> => {
    if (recordError !== null) throw recordError;
    // Quarantined tasks leave quarantine (with a fresh attempt budget) before they are published: a worker
    // that saw them still quarantined would skip them. A crash in between leaves them plain pending.
    const dead = batch.filter((m) => m.dead).map((m) => m.keyText);
    if (dead.length > 0) {
      await withDbRetry('releasing quarantined tasks', () => releaseDead(pool, opts.pipeline, dead), log, config.database.url, config.database.connectTimeoutMs);
      summary.requeuedDead += dead.length;
    }
    let acked: Acknowledged[];
    try {
      // The batch's messages go as they are: kafkajs reads key, value and partition and ignores the rest.
      acked = await sendAcknowledged(producer, batch, { topic: summary.topic, compression, resends: Math.max(1, config.kafka.retries), log });
    } catch (thrown) {
      // Kafka wrote part of the batch before the failure: that part is recorded, so no rerun sends it again.
      const partial = thrown instanceof UnacknowledgedError ? thrown.acknowledged : [];
      const err = thrown instanceof UnacknowledgedError ? thrown.error : thrown;
      if (partial.length > 0) {
        await recording.catch(() => {});
        summary.published += partial.length;
        await record(partial).catch((e: unknown) => log.error({ err: e, tasks: partial.length }, 'could not record the acknowledged part of a failed batch (a rerun publishes it again)'));
      }
      if (err instanceof KafkaError && err.code === 'KAFKA_PUBLISH_UNACKNOWLEDGED') throw err;
      const cause = coerceError(err);
      throw new KafkaError(
        'KAFKA_PUBLISH_FAILED',
        `publishing to ${summary.topic} failed after retries (${cause.message}); ${summary.published} task(s) were published and ${summary.recorded} recorded before the failure`,
        { retriable: true, hint: `check the broker (${run('services', 'status')}), then rerun: ${run('produce', `--pipeline ${opts.pipeline}`)}`, cause: err },
      );
    }
    summary.published += batch.length;
    summary.batches++;
    progress.add(batch.length);
    opts.onBatch?.({ messages: batch.length, bytes });
    log.debug({ messages: batch.length, bytes }, 'batch published');
    const previous = recording;
    recordsQueued++;
    recording = previous.then(async () => {
      try {
        await record(acked);
      } catch (err) {
        recordError = err;
        throw err;
      } finally {
        recordsQueued--;
      }
    });
    recording.catch(() => {});
    if (recordsQueued > 2) await previous;
  };

  const sender = new BatchSender({ maxBytes: summary.batchLimitBytes, flushMs: config.producer.flushMs, send });
  const limit = opts.limit ?? Number.POSITIVE_INFINITY;
  let accepted = 0;
  try {
    outer: for await (const page of pages(s)) {
      const enc = pageEncoder(s, new Date().toISOString());
      for (const row of page) {
        if (opts.shutdown?.stopping.aborted === true || accepted >= limit) break outer;
        summary.found++;
        const msg = encode(s, row, enc);
        if (msg === null) continue;
        accepted++;
        const closed = sender.add(msg);
        if (closed !== undefined) await closed;
      }
    }
    if (opts.shutdown?.signal.aborted === true) {
      const dropped = sender.discard();
      log.warn({ dropped }, 'forced stop: unsent batch dropped (the next run publishes it)');
    }
    await sender.flush();
    await recording;
  } catch (err) {
    sender.discard();
    // A send still on the wire must end before the caller disconnects the producer: kafkajs would otherwise
    // reconnect for it, and the process would keep a socket to the broker after the run failed.
    await sender.settled();
    await recording.catch(() => {});
    throw err;
  } finally {
    progress.stop();
  }
  summary.interrupted = opts.shutdown?.stopping.aborted === true;
}
