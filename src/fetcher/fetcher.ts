// The fetcher: moves a pipeline's messages from Kafka into the local spool, at least once. Made of parts:
// the consumer and its restart policy (consumer.ts), the batch spooler (batch-spooler.ts: durable before
// the offset is resolved), the backpressure gate (backpressure.ts) and the stats line (stats-reporter.ts).
// A kill -9 at any point loses nothing; at worst the batches since the last commit are spooled again.
//
// States: running <-> paused (the gate's; heartbeats go on)
//         -> stopping (finish the batch in hand, commit, leave the group) -> stopped
//         running -> (crashed -> restarting, kafkajs with backoff) -> failed (after fetcher.maxRestarts)
// Whatever the way out, close() runs: each cleanup step on its own.

import { hostname } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import type { Consumer, Kafka } from 'kafkajs';
import { closeAll } from '../core/close.js';
import { withRetries } from '../core/retry.js';
import { getPipeline, type PipelineConfig } from '../config/config.js';
import { KafkaError, coerceError } from '../core/errors.js';
import { run } from '../core/hints.js';
import { childLogger, type Logger } from '../core/logger.js';
import { recordBadMessages } from '../ledger/bad-messages.js';
import type { Pool, PoolUse } from '../db/pool.js';
import { spoolDepth } from '../spool/depth.js';
import type { SpoolComponentHandle } from '../spool/handle.js';
import { randomId, safeWorkerId, spoolPaths, type SpoolPaths } from '../spool/layout.js';
import { Heartbeat } from '../ledger/heartbeat.js';
import { QuarantineWriter } from '../spool/quarantine.js';
import { SpoolWriter } from '../spool/writer.js';
import { BackpressureGate } from './backpressure.js';
import { DiskGuard } from './disk-guard.js';
import { BatchSpooler, type FetchStats } from './batch-spooler.js';
import { COMMIT_INTERVAL_MS, RestartCounter, createConsumer } from './consumer.js';
import { openFetcherParts } from './fetcher-setup.js';
import type { FetchOptions } from './options.js';

export type { FetchOptions };
import { IdleWatch } from './idle-watch.js';
import { StatsReporter } from './stats-reporter.js';
import { lagOf } from '../kafka/lag.js';
import { kafkaFailure } from '../kafka/client.js';
import { ClaimKeeper, pipelineClaims } from '../kafka/ledger-claims.js';

export type { FetchStats } from './batch-spooler.js';

/** Partitions whose batches are written at the same time (their fsyncs overlap). */
const CONCURRENT_PARTITIONS = 3;

/** stop() finishes the batch in hand, commits and leaves the group; done rejects when the consumer fails for good. */
export type FetcherHandle = SpoolComponentHandle<FetchStats>;

export async function startFetcher(opts: FetchOptions): Promise<FetcherHandle> {
  const pipeline = getPipeline(opts.config, opts.pipeline);
  const log = childLogger(opts.log, { component: 'fetcher', pipeline: opts.pipeline });
  const paths = spoolPaths(resolvePath(opts.config.spool.dir), opts.pipeline);
  const writer = new SpoolWriter(paths, opts.config.spool.maxSegmentItems);
  await writer.open();
  const { pool, kafka, ledger } = await openFetcherParts(opts, pipeline, log, paths.root);
  const fetcher = new Fetcher(opts, paths, log, pool, writer, ledger);
  fetcher.keepClaims(new ClaimKeeper(kafka, ledger, pipelineClaims(pipeline), log));
  const consumer = createConsumer(kafka, opts.config, pipeline, fetcher.restarts, log);
  await fetcher.start(consumer, kafka, pipeline, Math.min(CONCURRENT_PARTITIONS, pipeline.partitions));
  return fetcher;
}

/** A failed join as sluice reports it (kafka/client.ts kafkaFailure): retried unless credentials were refused. */
const joinFailure = (thrown: unknown): Error =>
  kafkaFailure(
    thrown,
    'could not join the consumer group',
    `check the brokers (${run('services', 'status')}) and run fetch again; nothing was lost`,
  );

class Fetcher implements FetcherHandle {
  state: 'starting' | 'running' | 'stopping' | 'stopped' | 'failed' = 'starting';
  readonly paths: SpoolPaths;
  readonly done: Promise<FetchStats>;
  readonly restarts = new RestartCounter();
  readonly #opts: FetchOptions;
  readonly #log: Logger;
  readonly #pool: Pool | null;
  readonly #poolUse: PoolUse | null;
  readonly #spooler: BatchSpooler;
  readonly #disk: DiskGuard;
  readonly #started = performance.now();
  #gate: BackpressureGate | null = null;
  #reporter: StatsReporter | null = null;
  #idle: IdleWatch | null = null;
  #claims: ClaimKeeper | null = null;
  #heartbeat: Heartbeat | null = null;
  #consumer: Consumer | null = null;
  #settle: { finish(s: FetchStats): void; fail(err: Error): void } = { finish: () => {}, fail: () => {} };
  #closing: Promise<void> | null = null;
  #stopping: Promise<FetchStats> | null = null;

  constructor(
    opts: FetchOptions,
    paths: SpoolPaths,
    log: Logger,
    poolUse: PoolUse | null,
    writer: SpoolWriter,
    ledger: string | null,
  ) {
    this.#opts = opts;
    this.paths = paths;
    this.#log = log;
    this.#poolUse = poolUse;
    const pool = poolUse?.pool ?? null;
    this.#pool = pool;
    const quarantine = new QuarantineWriter(paths);
    this.#disk = new DiskGuard({
      dir: paths.root,
      minFreeBytes: opts.config.spool.minFreeBytes,
      batchBytes: opts.config.fetcher.maxBytes,
      log,
      onFull: () => this.#gate?.hold('disk full'),
      onRoom: () => this.#gate?.release('disk full'),
    });
    this.#spooler = new BatchSpooler({
      pipeline: opts.pipeline,
      ledger,
      maxItemBytes: opts.config.spool.maxItemBytes,
      fetcherId: safeWorkerId(opts.fetcherId ?? `${hostname()}-${process.pid}`),
      writeLines: (partition, lines) => writer.writeLines(partition, lines),
      quarantine: (entry) => quarantine.write(entry),
      room: (bytes) => this.#disk.room(bytes),
      diskFull: (err) => this.#disk.failed(err),
      written: (bytes) => this.#disk.written(bytes),
      recordBad: (rows) => {
        if (pool === null) return;
        recordBadMessages(pool, rows).catch((err: unknown) =>
          log.warn({ err }, 'could not record quarantined messages in the database (they are in the spool)'),
        );
      },
      onDurable: (b) => {
        this.restarts.consecutive = 0;
        opts.onBatch?.({
          partition: b.partition,
          segments: b.segments,
          quarantined: b.quarantined,
          resolved: b.resolved,
        });
        this.#gate?.added(b.items, b.bytes, b.segments.length);
      },
      log,
    });
    this.done = new Promise<FetchStats>((finish, fail) => {
      this.#settle = { finish, fail };
    });
    this.done.catch(() => void this.close());
  }

  async start(consumer: Consumer, kafka: Kafka, pipeline: PipelineConfig, concurrentPartitions: number): Promise<void> {
    const { topic, groupId } = pipeline;
    this.#consumer = consumer;
    const { spool, fetcher } = this.#opts.config;
    const lag = async (admin: Parameters<typeof lagOf>[0]) =>
      Object.values(await lagOf(admin, topic, groupId)).reduce((a, b) => a + b, 0);
    this.#idle = new IdleWatch({
      topic,
      groupId,
      afterMs: fetcher.sessionTimeoutMs,
      admin: () => kafka.admin(),
      lag,
      log: this.#log,
    });
    // kafkajs refuses pause() before run(): until the group is joined (which can take a while through a broker
    // outage) the gate only keeps its state, and it is applied once the consumer runs.
    let running = false;
    const valve = {
      pause: () => running && consumer.pause([{ topic }]),
      resume: () => running && consumer.resume([{ topic }]),
    };
    this.#gate = new BackpressureGate(spool, valve, await spoolDepth(this.paths), this.#log);
    this.#gate.watch(() => spoolDepth(this.paths));
    this.#reporter = new StatsReporter(() => this.stats(), fetcher.statsIntervalMs, this.#log);
    if (this.#pool !== null) {
      const id = `${safeWorkerId(this.#opts.fetcherId ?? `${hostname()}-${process.pid}`)}-${randomId()}`;
      this.#heartbeat = new Heartbeat(this.#pool, {
        id,
        role: 'fetcher',
        pipeline: this.#opts.pipeline,
        log: this.#log,
        info: () => ({ ...this.stats(), spool: this.paths.root }),
      });
    }
    // Which partitions this machine got: the line to grep when one fetcher seems idle.
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      const partitions = e.payload.memberAssignment[topic] ?? [];
      this.#log.info({ memberId: e.payload.memberId, leader: e.payload.isLeader, partitions }, 'joined consumer group');
      // A restarted consumer (after a crash) is a new group member with nothing paused: pause it again.
      if (running && this.#gate?.paused === true) consumer.pause([{ topic }]);
      this.#idle?.joined(e.payload.memberId, partitions);
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) this.#fail(coerceError(payload.error));
    });
    // Joining is retried like a crash (a broker that dies while the fetcher starts is an outage, not a bug):
    // the same backoff and budget as the consumer's restarts, each failed try leaving a clean consumer.
    const join = async (): Promise<void> => {
      try {
        await consumer.connect();
        await consumer.subscribe({ topic, fromBeginning: true });
        await consumer.run({
          autoCommit: true,
          autoCommitInterval: COMMIT_INTERVAL_MS,
          eachBatchAutoResolve: false,
          partitionsConsumedConcurrently: concurrentPartitions,
          eachBatch: (p) => this.#spooler.spool(p),
        });
      } catch (err) {
        await consumer.disconnect().catch(() => {});
        throw err;
      }
    };
    try {
      await withRetries(
        join,
        {
          maxAttempts: fetcher.maxRestarts + 1,
          initialDelayMs: fetcher.restartBackoffMs,
          maxDelayMs: 30_000,
          jitter: 'none',
        },
        {
          classify: joinFailure,
          onRetry: (err, attempt, delayMs) =>
            this.#log.warn({ err, attempt, delayMs }, 'could not join the consumer group; retrying'),
        },
      );
    } catch (err) {
      await this.close();
      throw err;
    }
    running = true;
    if (this.#gate.paused) consumer.pause([{ topic }]);
    this.state = 'running';
    this.#log.info(
      {
        topic,
        spool: this.paths.root,
        fetcherId: safeWorkerId(this.#opts.fetcherId ?? `${hostname()}-${process.pid}`),
      },
      'fetcher started',
    );
  }

  /** The claims on the topic and group, kept alive while the fetcher runs; closed with it. */
  keepClaims(keeper: ClaimKeeper): void {
    this.#claims = keeper;
  }

  stats(): FetchStats {
    const c = this.#spooler.counters;
    const depth = this.#gate?.depth ?? { items: 0, bytes: 0, readySegments: 0, claimedSegments: 0 };
    const gate = this.#gate;
    return {
      ...c,
      lag: { ...c.lag },
      restarts: this.restarts.total,
      paused: gate?.paused ?? false,
      pausedReason: gate?.reason ?? null,
      freeBytes: this.#disk.lastFree,
      depth,
      seconds: (performance.now() - this.#started) / 1000,
      idle: this.#idle?.report ?? null,
    };
  }

  #fail(cause: Error): void {
    this.state = 'failed';
    const hint = `check the broker (${run('services', 'status')}) and run fetch again; nothing was lost`;
    this.#settle.fail(
      new KafkaError(
        'KAFKA_CONSUMER_FAILED',
        `the Kafka consumer failed for ` +
          `good after ${this.restarts.consecutive - 1} restart(s) ` +
          `in a row: ${cause.message}`,
        { retriable: true, hint, cause },
      ),
    );
  }

  /** Finishes the batch in hand (kafkajs lets it become durable and committed), leaves the group, closes. */
  stop(): Promise<FetchStats> {
    this.#stopping ??= (async () => {
      if (this.state !== 'failed') this.state = 'stopping';
      await this.close();
      const s = this.stats();
      this.#log.info(
        { spooled: s.spooled, quarantined: s.quarantined, segments: s.segments, seconds: Number(s.seconds.toFixed(1)) },
        'fetcher stopped',
      );
      if (this.state === 'stopping') this.state = 'stopped';
      this.#settle.finish(s);
      return s;
    })();
    return this.#stopping;
  }

  /** Idempotent; each step on its own. */
  close(): Promise<void> {
    this.#closing ??= closeAll(this.#log, [
      ['backpressure gate', () => this.#gate?.close()],
      ['disk guard', () => this.#disk.close()],
      ['stats reporter', () => this.#reporter?.close()],
      ['idle watch', () => this.#idle?.close()],
      ['claim keeper', () => this.#claims?.close()],
      ['heartbeat', () => this.#heartbeat?.close()],
      ['consumer', () => this.#consumer?.disconnect()],
      ['database pool', () => this.#poolUse?.release()],
    ]);
    return this.#closing;
  }
}
