// A process's row in the registry (ledger/processes.ts), written every HEARTBEAT_MS with what `info` reports,
// and removed on close. A failed write is logged once and tried again at the next beat: the heartbeat never
// stops the work.
//
// States: running -> closed.

import { hostname } from 'node:os';
import type { Logger } from '../core/logger.js';
import { poolConnections, type Pool } from '../db/pool.js';
import { beat, removeProcess } from './processes.js';

export const HEARTBEAT_MS = 3000;
/** A row older than this belongs to a process that died (status and the dashboard say "stale"). */
export const STALE_AFTER_S = 15;

export class Heartbeat {
  state: 'running' | 'closed' = 'running';
  readonly id: string;
  readonly #pool: Pool;
  readonly #role: 'fetcher' | 'worker';
  readonly #pipeline: string;
  readonly #info: () => Record<string, unknown>;
  readonly #log: Logger;
  readonly #timer: NodeJS.Timeout;
  #failing = false;
  #beating: Promise<void> = Promise.resolve();

  constructor(
    pool: Pool,
    opts: {
      id: string;
      role: 'fetcher' | 'worker';
      pipeline: string;
      info: () => Record<string, unknown>;
      log: Logger;
    },
  ) {
    this.#pool = pool;
    this.id = opts.id;
    this.#role = opts.role;
    this.#pipeline = opts.pipeline;
    this.#info = opts.info;
    this.#log = opts.log;
    this.#beat();
    this.#timer = setInterval(() => this.#beat(), HEARTBEAT_MS);
    this.#timer.unref();
  }

  #beat(): void {
    this.#beating = beat(this.#pool, {
      id: this.id,
      host: hostname(),
      pid: process.pid,
      role: this.#role,
      pipeline: this.#pipeline,
      info: { ...this.#info(), dbConnections: poolConnections(this.#pool) },
    }).then(
      () => {
        this.#failing = false;
      },
      (err: unknown) => {
        if (!this.#failing) this.#log.warn({ err }, 'heartbeat failed; trying again');
        this.#failing = true;
      },
    );
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearInterval(this.#timer);
    await this.#beating;
    await removeProcess(this.#pool, this.id).catch((err: unknown) =>
      this.#log.warn({ err }, 'could not remove this process from the registry'),
    );
  }
}
