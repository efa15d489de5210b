// The publishing loop of a produce run: pending pages (page N+1 is read while page N is encoded and sent) ->
// batches of at most the batch limit -> send (acks=all, idempotent) -> dispatch records for what Kafka
// acknowledged. Quarantined tasks being requeued leave quarantine just before their batch is sent.

import { CompressionTypes, type Producer } from 'kafkajs';
import type { SluiceConfig } from '../config/config.js';
import { coerceError, KafkaError } from '../core/errors.js';
import { run } from '../core/hints.js';
import type { Logger } from '../core/logger.js';
import type { Shutdown } from '../core/shutdown.js';
import type { Pool } from '../db/pool.js';
import { recordDispatches, releaseQuarantined } from '../ledger/dispatches.js';
import { requestRecomputes } from '../ledger/stale.js';
import { sleep } from '../core/sleep.js';
import { fetchPendingPage, type PendingFilter, type PendingRow } from '../ledger/pending.js';
import { sourceQueryError } from '../user-tables/source.js';
import type { SourceInfo } from '../user-tables/table-info.js';
import { sendAcknowledged, UnacknowledgedError, type Acknowledged } from './acked-send.js';
import { BatchSender, type OutgoingMessage } from './batch-sender.js';
import type { DbCall } from './db-retry.js';
import { DispatchRecorder } from './dispatch-recorder.js';
import { encodeRow, pageEncoder, type EncoderParts, type Skip } from './encode.js';
import { Progress, type ProgressSink } from './progress.js';

export interface PublishRun {
  config: SluiceConfig;
  pipelineName: string;
  log: Logger;
  db: DbCall;
  pool: Pool;
  source: SourceInfo;
  filter: PendingFilter;
  producer: Producer;
  topic: string;
  encoder: Omit<EncoderParts, 'pipeline'>;
  /** Publish at most this many tasks. */
  limit: number;
  shutdown: Shutdown | undefined;
  progress: { total: number | null; sink: ProgressSink | undefined };
  onBatch: ((batch: { messages: number; bytes: number }) => void) | undefined;
  /** Each skipped row, as it is found. */
  onSkip: (skip: Skip) => void;
  /** The pages to publish, when not the pending tasks (produce --recompute: the stale ones). */
  pages?: (r: PublishRun) => AsyncGenerator<PendingRow[]>;
  /** Tasks published per second at most (a recompute paced so that it never crowds out fresh tasks). */
  ratePerSecond?: number;
}

/** What the loop did, counted as it goes (read after a failure too). */
export interface PublishCounts {
  found: number;
  published: number;
  recorded: number;
  requeuedQuarantined: number;
  batches: number;
}

async function* pendingPages(r: PublishRun): AsyncGenerator<PendingRow[]> {
  const size = r.config.producer.pageSize;
  const fetchPage = (after: string | undefined): Promise<PendingRow[]> =>
    r
      .db('reading pending tasks', () => fetchPendingPage(r.pool, r.source, r.filter, after, size))
      .catch((err: unknown) => {
        throw sourceQueryError(err, r.source, r.pipelineName) ?? err;
      });
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

/** Sends one batch and queues its dispatch records; a failure names what was published and recorded before it. */
function batchSend(r: PublishRun, counts: PublishCounts, recorder: DispatchRecorder, progress: Progress) {
  const compression = r.config.producer.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
  return async (batch: OutgoingMessage[], bytes: number): Promise<void> => {
    recorder.check();
    // Quarantined tasks leave quarantine (with a fresh attempt budget) before they are published: a worker
    // that saw them still quarantined would skip them. A crash in between leaves them plain pending.
    const quarantined = batch.filter((m) => m.quarantined).map((m) => m.keyText);
    if (quarantined.length > 0) {
      await r.db('releasing quarantined tasks', () => releaseQuarantined(r.pool, r.pipelineName, quarantined));
      counts.requeuedQuarantined += quarantined.length;
    }
    // A recompute is asked for before it is sent: the worker that receives it must find the request.
    const recomputes = batch.flatMap((m) =>
      m.recompute === undefined ? [] : [{ keyText: m.keyText, ...m.recompute }],
    );
    if (recomputes.length > 0)
      await r.db('recording recompute requests', () =>
        requestRecomputes(r.pool, r.pipelineName, r.encoder.runId, recomputes),
      );
    let acked: Acknowledged[];
    try {
      // The batch's messages go as they are: kafkajs reads key, value and partition and ignores the rest.
      acked = await sendAcknowledged(r.producer, batch, {
        topic: r.topic,
        compression,
        resends: Math.max(1, r.config.kafka.retries),
        log: r.log,
      });
    } catch (thrown) {
      throw await sendFailure(r, counts, recorder, thrown);
    }
    counts.published += batch.length;
    counts.batches++;
    progress.add(batch.length);
    r.onBatch?.({ messages: batch.length, bytes });
    r.log.debug({ messages: batch.length, bytes }, 'batch published');
    await recorder.add(acked);
  };
}

async function sendFailure(
  r: PublishRun,
  counts: PublishCounts,
  recorder: DispatchRecorder,
  thrown: unknown,
): Promise<unknown> {
  // Kafka wrote part of the batch before the failure: that part is recorded, so no rerun sends it again.
  const partial = thrown instanceof UnacknowledgedError ? thrown.acknowledged : [];
  const err = thrown instanceof UnacknowledgedError ? thrown.error : thrown;
  if (partial.length > 0) {
    counts.published += partial.length;
    await recorder.addPartial(partial, (e) =>
      r.log.error(
        { err: e, tasks: partial.length },
        'could not record the acknowledged part of a failed batch (a rerun publishes it again)',
      ),
    );
    counts.recorded = recorder.recorded;
  }
  if (err instanceof KafkaError && err.code === 'KAFKA_PUBLISH_UNACKNOWLEDGED') return err;
  const cause = coerceError(err);
  return new KafkaError(
    'KAFKA_PUBLISH_FAILED',
    `publishing to ${r.topic} failed after ` +
      `retries (${cause.message}); ${counts.published} task(s) were ` +
      `published and ${recorder.recorded} recorded before the failure`,
    {
      retriable: true,
      hint:
        `check the broker (${run('services', 'status')}), ` +
        `then rerun: ${run('produce', `--pipeline ${r.pipelineName}`)}`,
      cause: err,
    },
  );
}

/** Waits as long as it takes for `perSecond` calls a second at most. */
function pacer(perSecond: number): (signal: AbortSignal | undefined) => Promise<void> {
  let next: number | undefined;
  return async (signal) => {
    // After a stall (Kafka, the database) the pace resumes from now: no burst to catch up.
    const now = performance.now();
    next = Math.max(next ?? now, now);
    const wait = next - now;
    next += 1000 / perSecond;
    // A stop cuts the wait short; the loop then sees it and ends.
    if (wait > 0) await sleep(wait, signal).catch(() => {});
  };
}

/** Publishes every pending page; returns whether a stop interrupted it. `counts` is filled as it goes. */
export async function publishAll(r: PublishRun, counts: PublishCounts): Promise<void> {
  const progress = new Progress({
    total: r.progress.total,
    sink: r.progress.sink,
    log: r.log,
    intervalMs: r.config.producer.progressIntervalMs,
  });
  const recorder = new DispatchRecorder((acked) =>
    r.db('recording dispatches', () => recordDispatches(r.pool, r.pipelineName, r.encoder.runId, r.topic, acked)),
  );
  const sender = new BatchSender({
    maxBytes: r.encoder.batchLimitBytes,
    flushMs: r.config.producer.flushMs,
    send: batchSend(r, counts, recorder, progress),
  });
  let accepted = 0;
  const pace = r.ratePerSecond === undefined ? undefined : pacer(r.ratePerSecond);
  try {
    outer: for await (const page of (r.pages ?? pendingPages)(r)) {
      const enc = pageEncoder({ ...r.encoder, pipeline: r.pipelineName }, new Date().toISOString());
      for (const row of page) {
        if (r.shutdown?.stopping.aborted === true || accepted >= r.limit) break outer;
        counts.found++;
        const msg = encodeRow(row, enc);
        if ('skip' in msg) {
          r.onSkip(msg);
          continue;
        }
        accepted++;
        if (pace !== undefined) await pace(r.shutdown?.stopping);
        const closed = sender.add(msg);
        if (closed !== undefined) await closed;
      }
    }
    if (r.shutdown?.signal.aborted === true)
      r.log.warn({ dropped: sender.discard() }, 'forced stop: unsent batch dropped (the next run publishes it)');
    await sender.flush();
    await recorder.drain();
  } catch (err) {
    sender.discard();
    // A send still on the wire must end before the caller disconnects the producer: kafkajs would otherwise
    // reconnect for it, and the process would keep a socket to the broker after the run failed.
    await sender.settled();
    throw err;
  } finally {
    await recorder.close();
    counts.recorded = recorder.recorded;
    progress.stop();
  }
}
