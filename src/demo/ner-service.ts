// A stand-in for the shared GPU entity-recognition service of the original problem: slow (tens of ms per
// call), and it resets the connection of any call beyond `maxConcurrent` at once ("connection reset by
// peer"), plus a small share of random resets. POST /ner {"text": "..."} -> {"entities": ["Ada Lovelace", ...]}

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { ENTITIES } from './data.js';

export interface NerServiceOptions {
  port?: number;
  maxConcurrent?: number;
  minLatencyMs?: number;
  maxLatencyMs?: number;
  /** Share of calls reset at random even within the limit. */
  randomResetRate?: number;
}

export interface NerStats {
  requests: number;
  served: number;
  resetsOverLimit: number;
  resetsRandom: number;
  mostAtOnce: number;
}

export interface NerService {
  url: string;
  stats(): NerStats;
  close(): Promise<void>;
}

const NAMES = ENTITIES.map((e) => e.name);

export function findEntities(text: string): string[] {
  return NAMES.filter((n) => text.includes(n));
}

export async function startNerService(opts: NerServiceOptions = {}): Promise<NerService> {
  const max = opts.maxConcurrent ?? 8;
  const lo = opts.minLatencyMs ?? 10;
  const hi = opts.maxLatencyMs ?? 30;
  const randomReset = opts.randomResetRate ?? 0.005;
  const stats: NerStats = { requests: 0, served: 0, resetsOverLimit: 0, resetsRandom: 0, mostAtOnce: 0 };
  let now = 0;
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    stats.requests++;
    now++;
    stats.mostAtOnce = Math.max(stats.mostAtOnce, now);
    const done = (): void => void now--;
    if (now > max || Math.random() < randomReset) {
      if (now > max) stats.resetsOverLimit++;
      else stats.resetsRandom++;
      done();
      req.socket.destroy();
      return;
    }
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      setTimeout(() => {
        done();
        let text = '';
        try {
          text = String((JSON.parse(body) as { text?: unknown }).text ?? '');
        } catch {
          res.writeHead(400).end('{"error":"body must be JSON {\\"text\\": ...}"}');
          return;
        }
        stats.served++;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ entities: findEntities(text) }));
      }, lo + Math.random() * (hi - lo));
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
    stats: () => ({ ...stats }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
