// `sluice dashboard`: the page (page.ts and assets/), its JSON API (api.ts) and the chart library (uPlot, served
// from the installed package: no CDN, it works offline), on one HTTP server.
//
// Safety (guard.ts): a request must name an allowed host (421), carry the token when one is set (401), and a
// write must come from this dashboard's page or carry the token as Bearer (403); `readOnly` turns writes off.
// Every answer carries a Content-Security-Policy without inline script or style, and no page may frame it.
//
// States: listening -> closed.

import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SluiceConfig } from '../config/config.js';
import { ConfigError } from '../core/errors.js';
import { childLogger, type Logger } from '../core/logger.js';
import type { Shutdown } from '../core/shutdown.js';
import { isPoolBusy, openPool } from '../db/pool.js';
import { LagReader } from '../kafka/lag.js';
import { sleep } from '../core/sleep.js';
import { handleApi } from './api.js';
import { LOOPBACK_NAMES, RequestGuard } from './guard.js';
import { HttpError } from './http-error.js';
import { page } from './page.js';
import { SeriesCache } from '../ledger/stage-series.js';

export interface DashboardOptions {
  config: SluiceConfig;
  log: Logger;
  shutdown?: Shutdown;
}

export interface Dashboard {
  url: string;
  close(): Promise<void>;
}

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' " +
    "data:; connect-src 'self'; base-uri 'none'; form-action 'self'; " +
    "frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
} as const;

/** Requests waiting for a database connection at most; beyond, 503. */
const QUEUE_LIMIT = 100;
/** How long close() waits for requests in flight (a requeue's publish) before it ends the pool anyway. */
const CLOSE_WAIT_MS = 10_000;

const ASSETS = fileURLToPath(new URL('./assets/', import.meta.url));

export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  const { host, port, readOnly, allowedHosts, trustProxy } = opts.config.dashboard;
  const token = await dashboardToken(opts.config);
  if (!LOOPBACK_NAMES.has(host)) {
    const problems = [
      ...(token === ''
        ? [
            `dashboard.token: ${host} is not a loopback address, so a token is required: set ` +
              `dashboard.tokenFile (--token-file) or SLUICE_DASHBOARD_TOKEN`,
          ]
        : []),
      ...(allowedHosts.length === 0
        ? [
            `dashboard.allowedHosts: ${host} is not a loopback address: list the host names browsers use to reach it ` +
              `(--allowed-hosts)`,
          ]
        : []),
    ];
    if (problems.length > 0) throw new ConfigError(problems);
  }
  const log = childLogger(opts.log, { component: 'dashboard' });
  // One pool for every request (database.poolSize connections at most); a burst beyond it waits in a bounded
  // queue, and past that is answered 503: never a connection more on the user's server.
  const pool = await openPool(opts.config.database, { queueLimit: QUEUE_LIMIT });
  const lag = new LagReader(opts.config.kafka, log);
  const uplotDir = dirname(createRequire(import.meta.url).resolve('uplot/package.json'));
  const ctx = {
    config: opts.config,
    pool,
    log,
    readOnly,
    shutdown: opts.shutdown,
    series: new SeriesCache(),
    lag: (topic: string, group: string) => lag.read(topic, group),
    kafka: lag,
  };
  // A requeue half done when the dashboard stops would leave keys released but not published: close waits.
  const inFlight = new Set<Promise<unknown>>();
  const api = (m: string, p: string, q: URLSearchParams, b: unknown): Promise<unknown> => {
    const call = handleApi(ctx, m, p, q, b);
    const tracked = call.finally(() => inFlight.delete(tracked)).catch(() => {});
    inFlight.add(tracked);
    return call;
  };
  const r: Route = { guard: new RequestGuard({ allowedHosts, token, trustProxy }), readOnly, uplotDir, api };
  const server: Server = createServer((req, res) => {
    serve(req, res, r).catch((err: unknown) => {
      const busy = isPoolBusy(err);
      const status = err instanceof HttpError ? err.status : busy ? 503 : 500;
      if (status === 500) log.error({ err }, 'dashboard request failed');
      const message = busy
        ? 'busy: every database connection of the dashboard is in use; try again'
        : err instanceof Error
          ? err.message
          : String(err);
      send(res, status, { error: message, ...(err instanceof HttpError ? err.extra : {}) });
    });
  });
  await listen(server, host, port);
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/`;
  log.info({ url, readOnly, token: token !== '', allowedHosts }, 'dashboard listening');
  let closing: Promise<void> | null = null;
  return {
    url,
    close: () =>
      (closing ??= (async () => {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
        await Promise.race([Promise.allSettled([...inFlight]), sleep(CLOSE_WAIT_MS)]);
        await lag.close().catch(() => {});
        await pool.end().catch(() => {});
      })()),
  };
}

/** The token from dashboard.token or the first line of dashboard.tokenFile (not both). */
async function dashboardToken(config: SluiceConfig): Promise<string> {
  const { token, tokenFile } = config.dashboard;
  if (tokenFile === '') return token;
  if (token !== '')
    throw new ConfigError(['dashboard.tokenFile: set either dashboard.token or dashboard.tokenFile, not both']);
  let text: string;
  try {
    text = await readFile(tokenFile, 'utf8');
  } catch (err) {
    throw new ConfigError([
      `dashboard.tokenFile: cannot read ${tokenFile} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    ]);
  }
  const first = text.split('\n')[0]!.trim();
  if (first === '')
    throw new ConfigError([`dashboard.tokenFile: ${tokenFile} is empty; write the token on its first line`]);
  return first;
}

async function listen(server: Server, host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL'
          ? new ConfigError([`dashboard.port: cannot listen on ${host}:${port} (${err.code}); choose another --port`])
          : err,
      ),
    );
    server.listen(port, host, () => resolve());
  });
}

interface Route {
  guard: RequestGuard;
  readOnly: boolean;
  uplotDir: string;
  api: (method: string, path: string, query: URLSearchParams, body: unknown) => Promise<unknown>;
}

async function serve(req: IncomingMessage, res: ServerResponse, r: Route): Promise<void> {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://dashboard');
  } catch {
    throw new HttpError(400, 'malformed request URL');
  }
  const given = url.pathname === '/' ? url.searchParams.get('token') : null;
  if (given !== null) return exchangeToken(req, res, r.guard, given);
  const access = r.guard.admit(req);
  if (req.method === 'GET' && url.pathname === '/')
    return void res
      .writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
      .end(page({ readOnly: r.readOnly }));
  const file = assetFile(req.method, url.pathname, r.uplotDir);
  if (file !== null) return asset(res, file.path, file.type);
  if (!url.pathname.startsWith('/api/')) throw new HttpError(404, `no such page: ${url.pathname}`);
  let body: unknown = undefined;
  if (req.method === 'POST') {
    r.guard.assertWrite(req, access);
    body = await readJson(req);
  }
  send(res, 200, await r.api(req.method ?? 'GET', url.pathname, url.searchParams, body));
}

/** `/?token=`: the token becomes a session cookie and leaves the address (a wrong one is a 401, host first). */
function exchangeToken(req: IncomingMessage, res: ServerResponse, guard: RequestGuard, given: string): void {
  guard.assertHost(req);
  const cookie = guard.exchange(given, req);
  if (cookie === null) throw new HttpError(401, 'wrong token (or this dashboard has none)');
  res.writeHead(303, { 'set-cookie': cookie, location: '/', 'cache-control': 'no-store' }).end();
}

function assetFile(method: string | undefined, path: string, uplotDir: string): { path: string; type: string } | null {
  if (method !== 'GET') return null;
  const files: Record<string, { path: string; type: string }> = {
    '/assets/uplot.js': { path: join(uplotDir, 'dist/uPlot.iife.min.js'), type: 'text/javascript' },
    '/assets/uplot.css': { path: join(uplotDir, 'dist/uPlot.min.css'), type: 'text/css' },
    '/assets/page.js': { path: join(ASSETS, 'page.js'), type: 'text/javascript' },
    '/assets/page.css': { path: join(ASSETS, 'page.css'), type: 'text/css' },
  };
  return files[path] ?? null;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of req) {
    text += String(chunk);
    if (text.length > 64 * 1024) throw new HttpError(413, 'request body too large');
  }
  // No body is no object: the schema says so, naming it.
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, 'request body must be JSON');
  }
}

async function asset(res: ServerResponse, file: string, type: string): Promise<void> {
  res
    .writeHead(200, { 'content-type': `${type}; charset=utf-8`, 'cache-control': 'max-age=3600' })
    .end(await readFile(file));
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (status === 421) res.setHeader('connection', 'close');
  if (res.headersSent) return void res.end();
  res
    .writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' })
    .end(JSON.stringify(body));
}
