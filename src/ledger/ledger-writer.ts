// Batched, idempotent writes of the workers' ledger: milestones, results, attempt history, quarantined
// tasks. A write resolves once its batch is committed; batches are flushed at `maxBatch` rows or `flushMs`
// after the first write, whichever comes first, and grow with what arrives while the one before commits.
// Upserts (INSERT ... ON DUPLICATE KEY UPDATE) make a duplicate delivery harmless: the first milestone and
// the first result stay, nothing is written twice.
//
// Failures, by cause:
//   - the database is away (server gone, deadlock): the statement is retried with backoff until it
//     succeeds or the writer is closed (then LedgerClosedError): a result is never dropped;
//   - a row the database refuses (too large, JSON too deep, a value out of range): the batch is split in
//     halves until the refused rows stand alone; only their writes fail (LedgerWriteError), every other
//     row of the batch is written. One statement is atomic, so a failed half wrote nothing to redo.
// Statements are also cut by size, so that a batch of large outputs never exceeds max_allowed_packet.

import type { Logger } from '../core/logger.js';
import { SluiceError } from '../core/errors.js';
import { quoteIdentifier } from '../core/identifiers.js';
import { COLUMN_BYTES, cutBytes } from '../core/text.js';
import { DB_OUTAGE_POLICY, withDbRetries } from '../db/db-errors.js';
import type { RetryPolicy, Clock } from '../core/retry.js';
import type { Pool } from '../db/pool.js';
import type { ResultsInfo } from '../user-tables/table-info.js';
import { displayKey, keyValues } from '../user-tables/key-shape.js';
import { keysWithResult } from './task-state.js';

export type LedgerOp =
  | {
      kind: 'milestone';
      pipeline: string;
      key: string;
      stage: string;
      output: string;
      durationMs: number;
      attempt: number;
      /** The stage's version. */
      version: string;
      /** MD5 of `output` (16 bytes). */
      hash: Buffer;
    }
  /**
   * A milestone written again (a recompute, or a stale milestone rerun): replaces the stored one only while it still
   * has the version `replaced` the worker read (null: there was none), so a newer version written meanwhile stays.
   */
  | {
      kind: 'restage';
      pipeline: string;
      key: string;
      stage: string;
      output: string;
      durationMs: number;
      attempt: number;
      version: string;
      hash: Buffer;
      replaced: string | null;
    }
  /** A later stage's milestone that no longer follows from its input (an earlier stage's output changed). */
  | { kind: 'unstage'; pipeline: string; key: string; stage: string }
  /** The recompute request of `runId` is carried out (its new result is written). */
  | { kind: 'recomputed'; pipeline: string; key: string; runId: string }
  | {
      kind: 'result';
      pipeline: string;
      key: string;
      output: string;
      attempts: number;
      workerId: string;
      startedAt: Date;
      finishedAt: Date;
      durationMs: number;
      /** A recompute: the new result replaces the old one. */
      replace?: boolean;
    }
  | {
      kind: 'attempt';
      pipeline: string;
      key: string;
      stage: string;
      attempt: number;
      errorClass: string;
      errorMessage: string;
      retriable: boolean;
      workerId: string;
    }
  | {
      kind: 'quarantined';
      pipeline: string;
      key: string;
      stage: string | null;
      errorClass: string;
      errorMessage: string;
      attempts: number;
      payload: string | null;
      workerId: string;
    }
  /**
   * A row of the user's result table: the key, then `values` for `columns`; read back to check it is there for this
   * key.
   */
  | { kind: 'row'; pipeline: string; key: string; results: ResultsInfo; values: unknown[]; replace?: boolean };

/** The database refused this row for good (its content): the task it belongs to cannot be recorded as is. */
export class LedgerWriteError extends SluiceError {
  constructor(kind: string, cause: Error) {
    super('LEDGER_WRITE_FAILED', `the database refused the ${kind} row: ${cause.message}`, { retriable: false, cause });
  }
}

/**
 * The result table holds no row for the task's key after its write (a key column that merges or cuts keys,
 * a trigger): the task cannot be done as is. Quarantined, like a row the database refused.
 */
export class ResultNotStoredError extends LedgerWriteError {
  constructor(r: ResultsInfo, key: string) {
    const col = r.parts
      .map(
        (p) =>
          `${r.table}.${p.column} (${p.meta.columnType}${p.meta.collation === null ? '' : ` ${p.meta.collation}`})`,
      )
      .join(', ');
    super(
      'row',
      new Error(
        `result table '${r.table}' has no row for key ${JSON.stringify(key)} ` +
          `after its write: ${col} stored it under another key or cut it`,
      ),
    );
  }
}

/** The writer was closed while the database was away: the write was not made (the task goes back to the spool). */
export class LedgerClosedError extends SluiceError {
  constructor(cause: Error) {
    super('LEDGER_CLOSED', `ledger closed before the write could be made: ${cause.message}`, {
      retriable: true,
      cause,
    });
  }
}

interface Pending {
  op: LedgerOp;
  bytes: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Each column of a replaced milestone takes the new value only while the stored version is the one read. */
const casSet = (col: string, value: string): string => `${col} = IF(version <=> VALUES(replaced), ${value}, ${col})`;

const SQL = {
  milestone:
    'INSERT INTO sluice_milestones (pipeline, task_key, stage, output, duration_ms, attempt, version, output_hash) ' +
    'VALUES ? ON DUPLICATE KEY UPDATE pipeline = pipeline',
  // `version` last: every other assignment compares the stored version, before it changes (left to right).
  restage:
    'INSERT INTO sluice_milestones (pipeline, task_key, stage, output, duration_ms, attempt, version, output_hash, ' +
    `replaced) VALUES ? ON DUPLICATE KEY UPDATE ${[
      casSet('output', 'VALUES(output)'),
      casSet('output_hash', 'VALUES(output_hash)'),
      casSet('duration_ms', 'VALUES(duration_ms)'),
      casSet('attempt', 'VALUES(attempt)'),
      casSet('created_at', 'CURRENT_TIMESTAMP(3)'),
      casSet('replaced', 'VALUES(replaced)'),
      casSet('version', 'VALUES(version)'),
    ].join(', ')}`,
  unstage: 'DELETE FROM sluice_milestones WHERE (pipeline, task_key, stage) IN (?)',
  recomputed: 'DELETE FROM sluice_recomputes WHERE (pipeline, task_key, run_id) IN (?)',
  result:
    `INSERT INTO sluice_results (pipeline, task_key, output, attempts, ` +
    `worker_id, started_at, finished_at, duration_ms) VALUES ?
    ON DUPLICATE KEY UPDATE pipeline = pipeline`,
  resultReplace:
    `INSERT INTO sluice_results (pipeline, task_key, output, attempts, ` +
    `worker_id, started_at, finished_at, duration_ms) VALUES ?
    ON DUPLICATE KEY UPDATE output = VALUES(output), attempts = VALUES(attempts), worker_id = VALUES(worker_id),
      started_at = VALUES(started_at), finished_at = VALUES(finished_at), duration_ms = VALUES(duration_ms),
      updated_at = CURRENT_TIMESTAMP(3)`,
  attempt:
    `INSERT INTO sluice_attempts (pipeline, task_key, stage, attempt, ` +
    `error_class, error_message, retriable, worker_id) VALUES ?`,
  quarantined:
    `INSERT INTO sluice_dead_tasks (pipeline, task_key, stage, error_class, ` +
    `error_message, attempts, payload, worker_id) VALUES ?
    ON DUPLICATE KEY UPDATE stage = VALUES(stage), error_class = ` +
    `VALUES(error_class), error_message = VALUES(error_message),
      attempts = VALUES(attempts), payload = VALUES(payload), worker_id ` +
    `= VALUES(worker_id), quarantined_at = CURRENT_TIMESTAMP(3)`,
} as const;

/** The upsert into a user's result table: one statement shape per table and column list. */
function rowSql({ results: r, replace }: Extract<LedgerOp, { kind: 'row' }>): string {
  const cols = [...r.parts.map((p) => p.column), ...r.columns].map(quoteIdentifier);
  const k = quoteIdentifier(r.parts[0]!.column);
  // A recompute always replaces the row; `onConflict` governs only a duplicate first result.
  const update =
    r.onConflict === 'update' || replace === true
      ? r.columns.map((c) => `${quoteIdentifier(c)} = VALUES(${quoteIdentifier(c)})`).join(', ')
      : `${k} = ${k}`;
  return `INSERT INTO ${quoteIdentifier(r.table)} (${cols.join(', ')}) VALUES ? ON DUPLICATE KEY UPDATE ${update}`;
}

const sqlFor = (op: LedgerOp): string =>
  op.kind === 'row' ? rowSql(op) : op.kind === 'result' && op.replace === true ? SQL.resultReplace : SQL[op.kind];

/** Ops that share a statement: one kind (replacing or not), and for user rows one table and column list. */
const groupOf = (op: LedgerOp): string =>
  op.kind === 'row'
    ? `row\u0000${op.results.table}\u0000${op.results.columns.join(',')}\u0000${op.replace === true}`
    : op.kind === 'result' && op.replace === true
      ? 'result\u0000replace'
      : op.kind;

const cls = (s: string): string => cutBytes(s, COLUMN_BYTES.errorClass);
const msg = (s: string): string => cutBytes(s, COLUMN_BYTES.text);
const wid = (s: string): string => cutBytes(s, COLUMN_BYTES.workerId);

/** A result row's key columns; a key that is no key of the shape is a bug upstream, never a short row. */
function keyValuesOf(r: ResultsInfo, key: string): unknown[] {
  const values = keyValues(r, key);
  if (values === null) throw new TypeError(`key of result table '${r.table}' expected, got ${JSON.stringify(key)}`);
  return values;
}

function row(op: LedgerOp): unknown[] {
  switch (op.kind) {
    case 'milestone':
      return [op.pipeline, op.key, op.stage, op.output, op.durationMs, op.attempt, op.version, op.hash];
    case 'restage':
      return [op.pipeline, op.key, op.stage, op.output, op.durationMs, op.attempt, op.version, op.hash, op.replaced];
    case 'unstage':
      return [op.pipeline, op.key, op.stage];
    case 'recomputed':
      return [op.pipeline, op.key, op.runId];
    case 'result':
      return [
        op.pipeline,
        op.key,
        op.output,
        op.attempts,
        wid(op.workerId),
        op.startedAt,
        op.finishedAt,
        op.durationMs,
      ];
    case 'attempt':
      return [
        op.pipeline,
        op.key,
        op.stage,
        op.attempt,
        cls(op.errorClass),
        msg(op.errorMessage),
        op.retriable,
        wid(op.workerId),
      ];
    case 'quarantined':
      return [
        op.pipeline,
        op.key,
        op.stage,
        cls(op.errorClass),
        msg(op.errorMessage),
        op.attempts,
        op.payload,
        wid(op.workerId),
      ];
    case 'row':
      // A one-column key of text or integers is its text; bytes and composite keys are written part by part.
      return op.results.parts.length === 1 && op.results.keyKind !== 'binary'
        ? [op.key, ...op.values]
        : [...keyValuesOf(op.results, op.key), ...op.values];
  }
}

/** Roughly what a row adds to a statement: its large texts, plus room for the rest. */
function rowBytes(op: LedgerOp): number {
  if (op.kind === 'row')
    return op.values.reduce<number>(
      (n, v) => n + (typeof v === 'string' ? v.length : Buffer.isBuffer(v) ? v.length : 16),
      op.key.length + 256,
    );
  if (op.kind === 'unstage' || op.kind === 'recomputed') return op.key.length + 128;
  const big =
    op.kind === 'milestone' || op.kind === 'restage' || op.kind === 'result'
      ? op.output.length
      : op.kind === 'quarantined'
        ? (op.payload?.length ?? 0) + op.errorMessage.length
        : op.errorMessage.length;
  return big + op.key.length + 256;
}

export interface LedgerOptions {
  maxBatch: number;
  flushMs: number;
  databaseUrl: string;
  /** Largest statement sent (below the server's max_allowed_packet). @defaultValue 4 MiB */
  maxStatementBytes?: number;
  /** Backoff between retries of a statement while the database is away. @defaultValue DB_OUTAGE_POLICY */
  retry?: RetryPolicy;
  /** Tests pass a clock whose sleep returns at once. */
  clock?: Clock;
}

export class LedgerWriter {
  readonly #pool: Pool;
  readonly #log: Logger;
  readonly #opts: LedgerOptions & { maxStatementBytes: number };
  #queue: Pending[] = [];
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();
  /** A step of the chain will take the queue: later flushes ride on it. */
  #taking = false;
  #closed = false;
  readonly #stop = new AbortController();

  constructor(pool: Pool, log: Logger, opts: LedgerOptions) {
    this.#pool = pool;
    this.#log = log;
    this.#opts = { maxStatementBytes: 4 * 1024 * 1024, ...opts };
  }

  write(op: LedgerOp): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ op, bytes: rowBytes(op), resolve, reject });
      if (this.#queue.length >= this.#opts.maxBatch) void this.flush();
      else this.#timer ??= setTimeout(() => void this.flush(), this.#opts.flushMs);
    });
  }

  /**
   * Commits everything queued so far; resolves when it (and every earlier batch) is done. The batch is taken
   * from the queue when the commit before it has ended, not when it is asked for: what is written meanwhile
   * joins it (a group commit), so a busy ledger writes fewer, larger statements and no row waits longer. A
   * batch is bounded by the tasks in flight (each awaits its writes) and its statements by size (#bySize).
   */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#queue.length > 0 && !this.#taking) {
      this.#taking = true;
      this.#chain = this.#chain.then(() => {
        this.#taking = false;
        const batch = this.#queue;
        this.#queue = [];
        return batch.length === 0 ? undefined : this.#commit(batch);
      });
    }
    return this.#chain;
  }

  async #commit(batch: Pending[]): Promise<void> {
    const groups = new Map<string, Pending[]>();
    for (const p of batch) {
      const g = groupOf(p.op);
      const list = groups.get(g);
      if (list === undefined) groups.set(g, [p]);
      else list.push(p);
    }
    // Attempts and quarantine first, results last: a result is the task's "done" and comes after its history. Later
    // stages' milestones go before an earlier one is replaced: a crash between leaves them missing (stale), never
    // current on an output they did not see.
    const order = ['attempt', 'quarantined', 'unstage', 'milestone', 'restage', 'row', 'result', 'recomputed'];
    const keys = [...groups.keys()].sort(
      (a, b) => order.indexOf(a.split('\u0000')[0]!) - order.indexOf(b.split('\u0000')[0]!),
    );
    for (const g of keys) {
      const items = groups.get(g)!;
      for (const chunk of this.#bySize(items)) await this.#writeChunk(items[0]!.op.kind, chunk);
    }
  }

  /** Consecutive runs of rows whose statement stays under maxStatementBytes (a larger row goes alone). */
  #bySize(items: Pending[]): Pending[][] {
    const chunks: Pending[][] = [];
    let current: Pending[] = [];
    let bytes = 0;
    for (const p of items) {
      if (current.length > 0 && bytes + p.bytes > this.#opts.maxStatementBytes) {
        chunks.push(current);
        current = [];
        bytes = 0;
      }
      current.push(p);
      bytes += p.bytes;
    }
    if (current.length > 0) chunks.push(current);
    return chunks;
  }

  /** Writes the rows; a refused statement is split until the refused rows stand alone. */
  async #writeChunk(kind: LedgerOp['kind'], items: Pending[]): Promise<void> {
    try {
      await this.#withRetry(kind, () => this.#pool.query(sqlFor(items[0]!.op), [items.map((p) => row(p.op))]));
    } catch (err) {
      if (err instanceof LedgerClosedError) {
        for (const p of items) p.reject(err);
        return;
      }
      if (items.length === 1) {
        this.#log.warn({ err, kind, key: items[0]!.op.key }, 'ledger row refused by the database');
        items[0]!.reject(new LedgerWriteError(kind, err as Error));
        return;
      }
      const half = Math.ceil(items.length / 2);
      await this.#writeChunk(kind, items.slice(0, half));
      await this.#writeChunk(kind, items.slice(half));
      return;
    }
    if (kind === 'row') await this.#checkStored(items);
    else for (const p of items) p.resolve();
  }

  /**
   * A user's result row counts only when the table holds it for this very key: the written keys are read
   * back in one query, and a key with no row fails its task alone (upserts report no such thing: a merged
   * key is a "duplicate" the table kept quietly).
   */
  async #checkStored(items: Pending[]): Promise<void> {
    const op = items[0]!.op as Extract<LedgerOp, { kind: 'row' }>;
    let stored = new Set<string>();
    try {
      await this.#withRetry('row', async () => {
        stored = await keysWithResult(
          this.#pool,
          op.results,
          items.map((p) => p.op.key),
        );
      });
    } catch (err) {
      // Not known whether the rows are there: the tasks go back (closed) or fail with the reason, never rewritten
      // here.
      for (const p of items)
        p.reject(err instanceof LedgerClosedError ? err : new LedgerWriteError('row (read back)', err as Error));
      return;
    }
    for (const p of items) {
      if (stored.has(p.op.key)) p.resolve();
      else {
        const err = new ResultNotStoredError(op.results, p.op.key);
        this.#log.warn(
          { key: displayKey(op.results, p.op.key), table: op.results.table, error: err.message },
          'result row not stored for its key',
        );
        p.reject(err);
      }
    }
  }

  async #withRetry(kind: string, fn: () => Promise<unknown>): Promise<void> {
    try {
      await withDbRetries(fn, {
        databaseUrl: this.#opts.databaseUrl,
        policy: this.#opts.retry ?? DB_OUTAGE_POLICY,
        clock: this.#opts.clock,
        signal: this.#stop.signal,
        onRetry: (err, attempt, delayMs) =>
          this.#log.warn({ err, kind, attempt, delayMs }, 'ledger write failed; retrying'),
      });
    } catch (err) {
      // Closed while the database was away: the write was not made, and its task goes back to the spool.
      if (this.#closed && (err as { retriable?: boolean }).retriable === true)
        throw new LedgerClosedError(err as Error);
      throw err;
    }
  }

  /**
   * Stops waiting for the database: writes that cannot be made now reject with LedgerClosedError (their
   * tasks go back to the spool) instead of being retried. For a stop whose grace period is over.
   */
  abort(): void {
    this.#closed = true;
    this.#stop.abort();
  }

  /** Flushes what is queued and stops retrying failed batches afterwards. */
  async close(): Promise<void> {
    await this.flush().catch(() => {});
    this.abort();
  }
}
