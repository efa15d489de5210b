// Batched, idempotent writes of the workers' ledger: milestones, results, attempt history, quarantined
// tasks. A write resolves once its batch is committed; batches are flushed at `maxBatch` rows or `flushMs`
// after the first write, whichever comes first. Upserts (INSERT ... ON DUPLICATE KEY UPDATE) make a
// duplicate delivery harmless: the first milestone and the first result stay, nothing is written twice.
// A batch that fails with a retriable database error (server gone, deadlock) is retried with backoff
// until it succeeds or the writer is closed: a result is never dropped.

import type { Logger } from '../core/logger.js';
import { parseDatabaseUrl } from './database-url.js';
import { outageDelayMs, toDatabaseError, type Pool } from './pool.js';

export type LedgerOp =
  | { kind: 'milestone'; pipeline: string; key: string; stage: string; output: string; durationMs: number; attempt: number }
  | { kind: 'result'; pipeline: string; key: string; output: string; attempts: number; workerId: string; startedAt: Date; finishedAt: Date; durationMs: number }
  | { kind: 'attempt'; pipeline: string; key: string; stage: string; attempt: number; errorClass: string; errorMessage: string; retriable: boolean; workerId: string }
  | { kind: 'dead'; pipeline: string; key: string; stage: string | null; errorClass: string; errorMessage: string; attempts: number; payload: string; workerId: string };

interface Pending {
  op: LedgerOp;
  resolve: () => void;
  reject: (err: Error) => void;
}

const SQL = {
  milestone: `INSERT INTO sluice_milestones (pipeline, task_key, stage, output, duration_ms, attempt) VALUES ?
    ON DUPLICATE KEY UPDATE pipeline = pipeline`,
  result: `INSERT INTO sluice_results (pipeline, task_key, output, attempts, worker_id, started_at, finished_at, duration_ms) VALUES ?
    ON DUPLICATE KEY UPDATE pipeline = pipeline`,
  attempt: `INSERT INTO sluice_attempts (pipeline, task_key, stage, attempt, error_class, error_message, retriable, worker_id) VALUES ?`,
  dead: `INSERT INTO sluice_dead_tasks (pipeline, task_key, stage, error_class, error_message, attempts, payload, worker_id) VALUES ?
    ON DUPLICATE KEY UPDATE stage = VALUES(stage), error_class = VALUES(error_class), error_message = VALUES(error_message),
      attempts = VALUES(attempts), payload = VALUES(payload), worker_id = VALUES(worker_id), quarantined_at = CURRENT_TIMESTAMP(3)`,
} as const;

function row(op: LedgerOp): unknown[] {
  switch (op.kind) {
    case 'milestone':
      return [op.pipeline, op.key, op.stage, op.output, op.durationMs, op.attempt];
    case 'result':
      return [op.pipeline, op.key, op.output, op.attempts, op.workerId, op.startedAt, op.finishedAt, op.durationMs];
    case 'attempt':
      return [op.pipeline, op.key, op.stage, op.attempt, op.errorClass.slice(0, 128), op.errorMessage.slice(0, 60_000), op.retriable, op.workerId];
    case 'dead':
      return [op.pipeline, op.key, op.stage, op.errorClass.slice(0, 128), op.errorMessage.slice(0, 60_000), op.attempts, op.payload, op.workerId];
  }
}

export class LedgerWriter {
  readonly #pool: Pool;
  readonly #log: Logger;
  readonly #maxBatch: number;
  readonly #flushMs: number;
  readonly #url: string;
  #queue: Pending[] = [];
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(pool: Pool, log: Logger, opts: { maxBatch: number; flushMs: number; databaseUrl: string }) {
    this.#pool = pool;
    this.#log = log;
    this.#maxBatch = opts.maxBatch;
    this.#flushMs = opts.flushMs;
    this.#url = opts.databaseUrl;
  }

  write(op: LedgerOp): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ op, resolve, reject });
      if (this.#queue.length >= this.#maxBatch) void this.flush();
      else this.#timer ??= setTimeout(() => void this.flush(), this.#flushMs);
    });
  }

  /** Commits everything queued so far; resolves when it (and every earlier batch) is done. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#queue.length > 0) {
      const batch = this.#queue;
      this.#queue = [];
      this.#chain = this.#chain.then(() => this.#commit(batch));
    }
    return this.#chain;
  }

  async #commit(batch: Pending[]): Promise<void> {
    const byKind = new Map<LedgerOp['kind'], Pending[]>();
    for (const p of batch) byKind.set(p.op.kind, [...(byKind.get(p.op.kind) ?? []), p]);
    // Attempts and quarantine first, results last: a result is the task's "done" and comes after its history.
    for (const kind of ['attempt', 'dead', 'milestone', 'result'] as const) {
      const items = byKind.get(kind);
      if (items === undefined) continue;
      try {
        await this.#withRetry(kind, () => this.#pool.query(SQL[kind], [items.map((p) => row(p.op))]));
        for (const p of items) p.resolve();
      } catch (err) {
        for (const p of items) p.reject(err as Error);
      }
    }
  }

  async #withRetry(kind: string, fn: () => Promise<unknown>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await fn();
        return;
      } catch (err) {
        const e = toDatabaseError(err, parseDatabaseUrl(this.#url), 0);
        const code = (err as { code?: string }).code;
        const retriable = e.retriable || code === 'ER_LOCK_DEADLOCK' || code === 'ER_LOCK_WAIT_TIMEOUT';
        if (!retriable || this.#closed) throw e;
        const delay = outageDelayMs(attempt);
        this.#log.warn({ err: e, kind, attempt, delayMs: delay }, 'ledger write failed; retrying');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Flushes what is queued and stops retrying failed batches afterwards. */
  async close(): Promise<void> {
    await this.flush().catch(() => {});
    this.#closed = true;
  }
}
