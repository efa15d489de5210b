// The fetcher: moves a pipeline's messages from Kafka into the local spool, at least once.
//
// Per fetched batch (one partition, offsets in order): classify each message -> write the good ones as
// durable segments and the bad ones to quarantine -> only then resolve the batch's last offset. kafkajs
// commits resolved offsets (every second, on rebalance and on stop), so a committed offset is always
// contiguous per partition and never past an item that is not on disk: a kill -9 at any point loses
// nothing; at worst the batches since the last commit are fetched and spooled again.
//
// States: starting -> running <-> paused (spool above its high-water mark; heartbeats go on)
//         -> stopping (finish the batch in hand, commit, leave the group) -> stopped
//         running -> crashed -> restarting (kafkajs, with backoff) | failed (after fetcher.maxRestarts)

import { hostname } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import type { Consumer, EachBatchPayload } from 'kafkajs';
import { getPipeline, type SluiceConfig } from '../core/config.js';
import { DatabaseError, KafkaError, coerceError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { recordBadMessages, type BadMessageRow } from '../db/bad-messages.js';
import { openPool, type Pool } from '../db/pool.js';
import { inspectPipeline } from '../db/pipeline-tables.js';
import { checkKafka, createKafka } from '../kafka/client.js';
import { ensureTopic } from '../kafka/topics.js';
import { spoolDepth, type SpoolDepth } from '../spool/depth.js';
import type { SpoolComponentHandle } from '../spool/handle.js';
import { safeWorkerId, spoolPaths } from '../spool/layout.js';
import type { SpoolItem } from '../spool/segment.js';
import { SpoolWriter } from '../spool/writer.js';
import { classify } from './validate.js';
import { run } from '../core/hints.js';

const QUARANTINED_VALUE_BYTES = 64 * 1024;
const BACKPRESSURE_CHECK_MS = 500;
/** kafkajs commits the offsets resolved so far at most this often (and when the fetcher stops or loses partitions). */
const COMMIT_INTERVAL_MS = 1000;
/** Partitions whose batches are written at the same time (their fsyncs overlap). */
const CONCURRENT_PARTITIONS = 3;

export interface FetchOptions {
  config: SluiceConfig;
  pipeline: string;
  log: Logger;
  /** Shown in quarantine records; default <hostname>-<pid>. */
  fetcherId?: string;
  /** Called after a batch is durable; `resolved` is the offset kafkajs will commit for its partition (tests, metrics). */
  onBatch?: (b: { partition: number; segments: string[]; quarantined: number; resolved: string }) => void;
}

export interface FetchStats {
  spooled: number;
  quarantined: number;
  segments: number;
  batches: number;
  restarts: number;
  paused: boolean;
  depth: SpoolDepth;
  /** Messages behind the high watermark, per partition, as of the last batch from it. */
  lag: Record<string, number>;
  seconds: number;
}

/** stop() finishes the batch in hand, commits and leaves the group; done rejects when the consumer fails for good. */
export type FetcherHandle = SpoolComponentHandle<FetchStats>;

export async function startFetcher(opts: FetchOptions): Promise<FetcherHandle> {
  const { config } = opts;
  const pipeline = getPipeline(config, opts.pipeline);
  const log = opts.log.child({ component: 'fetcher', pipeline: opts.pipeline });
  const fetcherId = safeWorkerId(opts.fetcherId ?? `${hostname()}-${process.pid}`);
  const paths = spoolPaths(resolvePath(config.spool.dir), opts.pipeline);
  const writer = new SpoolWriter(paths, config.spool.maxSegmentItems);
  await writer.open();

  let pool: Pool | null = null;
  try {
    pool = await openPool(config.database, { poolSize: 2 });
  } catch (err) {
    // Only an outage is tolerated here; an unset or wrong configuration is not.
    if (!(err instanceof DatabaseError) || !err.retriable) throw err;
    log.warn({ err }, 'database unreachable: bad messages are recorded in the spool quarantine only');
  }
  if (pool !== null) {
    // The same start-up check as produce and work: a source sluice cannot page exactly is refused here too.
    try {
      await inspectPipeline(pool, pipeline, opts.pipeline);
    } catch (err) {
      await pool.end().catch(() => {});
      throw err;
    }
  }

  await checkKafka(config.kafka, log);
  const kafka = createKafka(config.kafka, opts.log.child({ component: 'kafka', pipeline: opts.pipeline }), {
    retry: { retries: config.kafka.retries, initialRetryTime: 300, maxRetryTime: 10_000 },
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopic(admin, pipeline.topic, pipeline.partitions, log);
  } finally {
    await admin.disconnect();
  }

  const started = performance.now();
  const stats: FetchStats = { spooled: 0, quarantined: 0, segments: 0, batches: 0, restarts: 0, paused: false, depth: await spoolDepth(paths), lag: {}, seconds: 0 };
  let fail: (err: Error) => void = () => {};
  let finish: (s: FetchStats) => void = () => {};
  const done = new Promise<FetchStats>((res, rej) => {
    finish = res;
    fail = rej;
  });
  done.catch(() => {});

  let consecutiveRestarts = 0;
  const consumer: Consumer = kafka.consumer({
    groupId: config.fetcher.groupId ?? `sluice.${opts.pipeline}`,
    sessionTimeout: config.fetcher.sessionTimeoutMs,
    heartbeatInterval: Math.min(3000, Math.floor(config.fetcher.sessionTimeoutMs / 10)),
    maxBytesPerPartition: config.fetcher.maxBytesPerPartition,
    maxBytes: config.fetcher.maxBytes,
    allowAutoTopicCreation: false,
    retry: {
      retries: config.kafka.retries,
      initialRetryTime: 300,
      maxRetryTime: 10_000,
      // kafkajs restarts a crashed consumer within a second; a broker that takes longer to come back would
      // use up every restart at once. So each consecutive restart waits twice as long (up to 30 s), and a
      // batch that goes through resets the count.
      restartOnFailure: async (err) => {
        consecutiveRestarts++;
        stats.restarts++;
        const again = consecutiveRestarts <= config.fetcher.maxRestarts;
        const delayMs = Math.min(30_000, config.fetcher.restartBackoffMs * 2 ** (consecutiveRestarts - 1));
        log.error({ err, restarts: consecutiveRestarts, restarting: again, delayMs: again ? delayMs : null }, 'consumer crashed');
        if (again) await new Promise((r) => setTimeout(r, delayMs));
        return again;
      },
    },
  });

  // Which partitions this machine got: the line to grep when one fetcher seems idle.
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    log.info({ memberId: e.payload.memberId, leader: e.payload.isLeader, partitions: e.payload.memberAssignment[pipeline.topic] ?? [] }, 'joined consumer group');
  });

  // Backpressure: pause the topic above the high-water mark, resume below the low-water mark.
  const { spool } = config;
  // The directory is scanned every BACKPRESSURE_CHECK_MS; between scans, written items are added to the
  // last count, so a batch never waits on a listing of the whole spool.
  const applyDepth = (d: SpoolDepth): void => {
    stats.depth = d;
    if (!stats.paused && (d.items >= spool.highWaterItems || d.bytes >= spool.highWaterBytes)) {
      stats.paused = true;
      consumer.pause([{ topic: pipeline.topic }]);
      log.info({ items: d.items, bytes: d.bytes }, 'spool above high-water mark: fetching paused');
    } else if (stats.paused && d.items <= spool.lowWaterItems && d.bytes <= spool.lowWaterBytes) {
      stats.paused = false;
      consumer.resume([{ topic: pipeline.topic }]);
      log.info({ items: d.items, bytes: d.bytes }, 'spool below low-water mark: fetching resumed');
    }
  };
  const checkDepth = async (): Promise<void> => applyDepth(await spoolDepth(paths));
  const depthTimer = setInterval(() => void checkDepth().catch((err: unknown) => log.warn({ err }, 'spool depth check failed')), BACKPRESSURE_CHECK_MS);

  let lastSpooled = 0;
  let lastStatsAt = performance.now();
  const statsTimer = setInterval(() => {
    const now = performance.now();
    const rate = ((stats.spooled - lastSpooled) * 1000) / Math.max(1, now - lastStatsAt);
    lastSpooled = stats.spooled;
    lastStatsAt = now;
    log.info(
      { itemsPerSec: Math.round(rate), spooled: stats.spooled, quarantined: stats.quarantined, depthItems: stats.depth.items, depthBytes: stats.depth.bytes, paused: stats.paused, lag: stats.lag },
      'fetch stats',
    );
  }, config.fetcher.statsIntervalMs);

  const eachBatch = async ({ batch, resolveOffset, heartbeat, isStale }: EachBatchPayload): Promise<void> => {
    if (batch.messages.length === 0 || isStale()) return;
    const items: SpoolItem[] = [];
    const lines: string[] = [];
    const badRows: BadMessageRow[] = [];
    const rejected: Array<{ m: (typeof batch.messages)[number]; reason: string; detail: string }> = [];
    for (const m of batch.messages) {
      const v = classify(m, batch.partition, opts.pipeline, spool.maxItemBytes);
      if (v.ok) {
        items.push(v.item);
        lines.push(v.line);
      } else rejected.push({ m, reason: v.reason, detail: v.detail });
    }
    const { names: segments, bytes } = await writer.writeItems(batch.partition, items, lines);
    for (const { m, reason, detail } of rejected) {
      const file = await writer.quarantine({
        reason,
        detail,
        topic: batch.topic,
        partition: batch.partition,
        offset: m.offset,
        key: m.key === null ? null : m.key.toString('base64'),
        value: m.value === null ? null : m.value.subarray(0, QUARANTINED_VALUE_BYTES).toString('base64'),
        size: m.value?.length ?? 0,
        source: 'fetcher',
        at: new Date().toISOString(),
      });
      log.warn({ reason, detail, partition: batch.partition, offset: m.offset, file }, 'message quarantined');
      badRows.push({ pipeline: opts.pipeline, topic: batch.topic, partition: batch.partition, offset: m.offset, reason, detail, key: m.key, size: m.value?.length ?? 0, fetcherId, spoolFile: file });
    }
    if (pool !== null && badRows.length > 0) {
      recordBadMessages(pool, badRows).catch((err: unknown) => log.warn({ err }, 'could not record quarantined messages in the database (they are in the spool)'));
    }
    // Lost the partition while writing: the new owner fetches these again (a duplicate, never a gap).
    if (isStale()) return;
    const last = batch.messages[batch.messages.length - 1]!.offset;
    const next = (BigInt(last) + 1n).toString();
    resolveOffset(last);
    await heartbeat();
    consecutiveRestarts = 0;
    stats.batches++;
    stats.spooled += items.length;
    stats.quarantined += rejected.length;
    stats.segments += segments.length;
    stats.lag[String(batch.partition)] = Number(batch.offsetLag());
    log.debug({ partition: batch.partition, items: items.length, segments: segments.length, committed: next }, 'batch spooled');
    opts.onBatch?.({ partition: batch.partition, segments, quarantined: rejected.length, resolved: next });
    applyDepth({ ...stats.depth, items: stats.depth.items + items.length, bytes: stats.depth.bytes + bytes, readySegments: stats.depth.readySegments + segments.length });
  };

  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (!payload.restart) {
      const cause = coerceError(payload.error);
      fail(new KafkaError('KAFKA_CONSUMER_FAILED', `the Kafka consumer failed for good after ${consecutiveRestarts - 1} restart(s) in a row: ${cause.message}`, { retriable: true, hint: `check the broker (${run('services', 'status')}) and run fetch again; nothing was lost`, cause }));
    }
  });

  let stopping: Promise<FetchStats> | null = null;
  const cleanup = async (): Promise<void> => {
    clearInterval(depthTimer);
    clearInterval(statsTimer);
    await consumer.disconnect().catch((err: unknown) => log.warn({ err }, 'consumer disconnect failed'));
    await pool?.end().catch(() => {});
  };
  done.catch(() => void cleanup());

  await consumer.connect();
  await consumer.subscribe({ topic: pipeline.topic, fromBeginning: true });
  await consumer.run({
    autoCommit: true,
    autoCommitInterval: COMMIT_INTERVAL_MS,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: Math.min(CONCURRENT_PARTITIONS, pipeline.partitions),
    eachBatch,
  });
  log.info({ topic: pipeline.topic, spool: paths.root, fetcherId }, 'fetcher started');

  return {
    paths,
    stats: () => ({ ...stats, seconds: (performance.now() - started) / 1000 }),
    stop: () => {
      stopping ??= (async () => {
        // kafkajs lets the batch in hand finish (it is made durable and committed) before leaving the group.
        await cleanup();
        const s = { ...stats, seconds: (performance.now() - started) / 1000 };
        log.info({ spooled: s.spooled, quarantined: s.quarantined, segments: s.segments, seconds: Number(s.seconds.toFixed(1)) }, 'fetcher stopped');
        finish(s);
        return s;
      })();
      return stopping;
    },
    done,
  };
}
