// One fetched batch (one partition, offsets in order) into the spool: classify each message -> write the
// good ones as durable segments and the bad ones to quarantine -> only then resolve the batch's last
// offset. kafkajs commits resolved offsets, so a committed offset is never past an item not on disk.
// A full disk (no room before the write, or ENOSPC during it) leaves the batch unresolved: the topic is
// paused (disk-guard.ts) and kafkajs fetches the batch again from the last resolved offset once it resumes.
// Segments of the batch already written stay: a duplicate the workers absorb, never a gap.

import type { EachBatchPayload } from 'kafkajs';
import type { Logger } from '../core/logger.js';
import type { BadMessageRow } from '../ledger/bad-messages.js';
import type { SpoolDepth } from '../spool/depth.js';
import type { QuarantineEntry } from '../spool/quarantine.js';
import type { SpoolLine } from '../spool/segment.js';
import type { IdleReport } from './idle-watch.js';
import { classify } from './validate.js';
import { isDiskFull } from '../spool/layout.js';

const QUARANTINED_VALUE_BYTES = 64 * 1024;
/** A spool line's bytes beside the message value: `{"partition":..,"offset":"..","task":` and the newline. */
const LINE_OVERHEAD_BYTES = 64;

export interface FetchStats {
  spooled: number;
  quarantined: number;
  segments: number;
  batches: number;
  restarts: number;
  paused: boolean;
  /** Why fetching is paused: 'high-water mark' or 'disk full' (null: not paused). */
  pausedReason: string | null;
  /** Free bytes on the spool's file system at the last check (null: not measured). */
  freeBytes: number | null;
  depth: SpoolDepth;
  /** Messages behind the high watermark, per partition, as of the last batch from it. */
  lag: Record<string, number>;
  seconds: number;
  /** Set while the fetcher holds no partition and its topic has lag (idle-watch.ts). */
  idle?: IdleReport | null;
}

export type BatchCounters = Pick<FetchStats, 'spooled' | 'quarantined' | 'segments' | 'batches' | 'lag'>;

export interface BatchSpoolerDeps {
  pipeline: string;
  /** This deployment's ledger id (null: unknown, the worker checks instead). */
  ledger: string | null;
  maxItemBytes: number;
  fetcherId: string;
  writeLines(partition: number, lines: readonly SpoolLine[]): Promise<{ names: string[]; bytes: number }>;
  quarantine(entry: QuarantineEntry): Promise<string>;
  /** Whether the disk has room for `bytes` more (false: paused for a full disk). */
  room(bytes: number): Promise<boolean>;
  /** A write failed with ENOSPC or EDQUOT: pause for a full disk. */
  diskFull(err: NodeJS.ErrnoException): void;
  /** The bytes `room` reserved are written (or failed). */
  written(bytes: number): void;
  /** Records bad messages in the database; best effort (they are in the spool either way). */
  recordBad(rows: BadMessageRow[]): void;
  /** A batch is durable and its offset resolved. */
  onDurable(b: {
    partition: number;
    items: number;
    bytes: number;
    segments: string[];
    quarantined: number;
    resolved: string;
  }): void;
  log: Logger;
}

type Message = EachBatchPayload['batch']['messages'][number];
type Payload = Pick<EachBatchPayload, 'batch' | 'resolveOffset' | 'heartbeat' | 'isStale'>;

export class BatchSpooler {
  readonly counters: BatchCounters = { spooled: 0, quarantined: 0, segments: 0, batches: 0, lag: {} };
  readonly #d: BatchSpoolerDeps;

  constructor(deps: BatchSpoolerDeps) {
    this.#d = deps;
  }

  async spool({ batch, resolveOffset, heartbeat, isStale }: Payload): Promise<void> {
    if (batch.messages.length === 0 || isStale()) return;
    const lines: SpoolLine[] = [];
    const rejected: Array<{ m: Message; reason: string; detail: string }> = [];
    for (const m of batch.messages) {
      const v = classify(m, batch.partition, this.#d.pipeline, this.#d.maxItemBytes, this.#d.ledger);
      if (v.ok) lines.push(v.line);
      else rejected.push({ m, reason: v.reason, detail: v.detail });
    }
    // From the messages' sizes, not the lines' (no pass over the text): a line is its value plus a short
    // prefix; a quarantine file at most QUARANTINED_VALUE_BYTES of it, base64, plus the record.
    let need = rejected.length * (QUARANTINED_VALUE_BYTES * 2);
    for (const m of batch.messages) need += (m.value?.length ?? 0) + LINE_OVERHEAD_BYTES;
    // Not resolved: fetched again from the last resolved offset once the disk has room.
    if (!(await this.#d.room(need))) return;
    let segments: string[];
    let bytes: number;
    try {
      ({ names: segments, bytes } = await this.#d.writeLines(batch.partition, lines));
      await this.#quarantine(batch.topic, batch.partition, rejected);
    } catch (err) {
      if (!isDiskFull(err)) throw err;
      this.#d.diskFull(err as NodeJS.ErrnoException);
      return;
    } finally {
      this.#d.written(need);
    }
    // Lost the partition while writing: the new owner fetches these again (a duplicate, never a gap).
    if (isStale()) return;
    const last = batch.messages[batch.messages.length - 1]!.offset;
    const next = (BigInt(last) + 1n).toString();
    resolveOffset(last);
    await heartbeat();
    const c = this.counters;
    c.batches++;
    c.spooled += lines.length;
    c.quarantined += rejected.length;
    c.segments += segments.length;
    c.lag[String(batch.partition)] = Number(batch.offsetLag());
    this.#d.log.debug(
      { partition: batch.partition, items: lines.length, segments: segments.length, committed: next },
      'batch spooled',
    );
    this.#d.onDurable({
      partition: batch.partition,
      items: lines.length,
      bytes,
      segments,
      quarantined: rejected.length,
      resolved: next,
    });
  }

  async #quarantine(
    topic: string,
    partition: number,
    rejected: Array<{ m: Message; reason: string; detail: string }>,
  ): Promise<void> {
    const rows: BadMessageRow[] = [];
    for (const { m, reason, detail } of rejected) {
      const file = await this.#d.quarantine({
        reason,
        detail,
        topic,
        partition,
        offset: m.offset,
        key: m.key === null ? null : m.key.toString('base64'),
        value: m.value === null ? null : m.value.subarray(0, QUARANTINED_VALUE_BYTES).toString('base64'),
        size: m.value?.length ?? 0,
        source: 'fetcher',
        at: new Date().toISOString(),
      });
      this.#d.log.warn({ reason, detail, partition, offset: m.offset, file }, 'message quarantined');
      rows.push({
        pipeline: this.#d.pipeline,
        topic,
        partition,
        offset: m.offset,
        reason,
        detail,
        key: m.key,
        size: m.value?.length ?? 0,
        fetcherId: this.#d.fetcherId,
        spoolFile: file,
      });
    }
    if (rows.length > 0) this.#d.recordBad(rows);
  }
}
