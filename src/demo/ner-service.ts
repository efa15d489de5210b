// A stand-in for the shared GPU entity-recognition service of the original problem, modelled on a GPU
// server: `slots` calls run in parallel (each takes minLatencyMs..maxLatencyMs); calls beyond them wait in a
// queue, so latency grows with the load; a call that arrives when `hardLimit` calls are already in the
// service has its connection reset ("connection reset by peer"), and a small share of calls is reset at
// random. The capacity can be changed while it runs: `setSlots(n)`, or POST /control {"slots": n}.
//   POST /ner {"text": "..."} -> {"entities": ["Ada Lovelace", ...]}     GET /stats -> the counters

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { ENTITIES } from './data.js';

export interface NerServiceOptions {
  port?: number;
  /** Calls served in parallel. @defaultValue 8 */
  slots?: number;
  /** Calls in the service (running + queued) above which new ones are reset. @defaultValue 2 x slots */
  hardLimit?: number;
  minLatencyMs?: number;
  maxLatencyMs?: number;
  /** Share of calls reset at random even within the limit. */
  randomResetRate?: number;
  /** @deprecated the old name of `slots` */
  maxConcurrent?: number;
}

export interface NerStats {
  requests: number;
  served: number;
  resetsOverLimit: number;
  resetsRandom: number;
  /** The most calls in the service (running and queued) at once. */
  mostAtOnce: number;
  /** Calls in the service now. */
  inService: number;
  slots: number;
  hardLimit: number;
  /** Calls served, by the caller's `x-client` header (when it sends one). */
  servedBy: Record<string, number>;
}

export interface NerService {
  url: string;
  stats(): NerStats;
  /** Changes the capacity while it runs (the hard limit follows at twice the slots unless it was given). */
  setSlots(slots: number): void;
  close(): Promise<void>;
}

const NAMES = ENTITIES.map((e) => e.name);

export function findEntities(text: string): string[] {
  return NAMES.filter((n) => text.includes(n));
}

class GpuModel {
  readonly stats: NerStats;
  readonly #queue: Array<() => void> = [];
  #running = 0;
  readonly #fixedHardLimit: number | undefined;

  constructor(slots: number, hardLimit: number | undefined) {
    this.#fixedHardLimit = hardLimit;
    this.stats = {
      requests: 0,
      served: 0,
      resetsOverLimit: 0,
      resetsRandom: 0,
      mostAtOnce: 0,
      inService: 0,
      slots,
      hardLimit: hardLimit ?? slots * 2,
      servedBy: {},
    };
  }

  setSlots(n: number): void {
    this.stats.slots = Math.max(1, Math.floor(n));
    this.stats.hardLimit = this.#fixedHardLimit ?? this.stats.slots * 2;
    this.#next();
  }

  /** Admits a call (false: reset it), and runs `work` once a slot is free. */
  admit(work: (release: () => void) => void): boolean {
    const s = this.stats;
    if (s.inService >= s.hardLimit) return false;
    s.inService++;
    s.mostAtOnce = Math.max(s.mostAtOnce, s.inService);
    this.#queue.push(() => work(() => this.#release()));
    this.#next();
    return true;
  }

  #release(): void {
    this.#running--;
    this.stats.inService--;
    this.#next();
  }

  #next(): void {
    while (this.#running < this.stats.slots && this.#queue.length > 0) {
      this.#running++;
      this.#queue.shift()!();
    }
  }
}

export async function startNerService(opts: NerServiceOptions = {}): Promise<NerService> {
  const lo = opts.minLatencyMs ?? 10;
  const hi = opts.maxLatencyMs ?? 30;
  const randomReset = opts.randomResetRate ?? 0.005;
  const gpu = new GpuModel(opts.slots ?? opts.maxConcurrent ?? 8, opts.hardLimit);
  const reset = (req: IncomingMessage, kind: 'resetsOverLimit' | 'resetsRandom'): void => {
    gpu.stats[kind]++;
    req.socket.destroy();
  };
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method === 'GET' && req.url === '/stats')
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(gpu.stats));
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.url === '/control') return control(gpu, body, res);
      gpu.stats.requests++;
      if (Math.random() < randomReset) return reset(req, 'resetsRandom');
      const admitted = gpu.admit((release) => {
        setTimeout(
          () => {
            release();
            let text = '';
            try {
              const sent = (JSON.parse(body) as { text?: unknown }).text;
              text = typeof sent === 'string' ? sent : '';
            } catch {
              return void res.writeHead(400).end('{"error":"body must be JSON {\\"text\\": ...}"}');
            }
            gpu.stats.served++;
            const client = req.headers['x-client'];
            if (typeof client === 'string') gpu.stats.servedBy[client] = (gpu.stats.servedBy[client] ?? 0) + 1;
            res
              .writeHead(200, { 'content-type': 'application/json' })
              .end(JSON.stringify({ entities: findEntities(text) }));
          },
          lo + Math.random() * (hi - lo),
        );
      });
      if (!admitted) reset(req, 'resetsOverLimit');
    });
  };
  const server = createServer(handle);
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}/ner`,
    stats: () => ({ ...gpu.stats, servedBy: { ...gpu.stats.servedBy } }),
    setSlots: (n) => gpu.setSlots(n),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function control(gpu: GpuModel, body: string, res: ServerResponse): void {
  try {
    const slots = Number((JSON.parse(body) as { slots?: unknown }).slots);
    if (!Number.isInteger(slots) || slots < 1) throw new Error('slots must be a positive integer');
    gpu.setSlots(slots);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(gpu.stats));
  } catch (err) {
    res.writeHead(400).end(JSON.stringify({ error: (err as Error).message }));
  }
}
