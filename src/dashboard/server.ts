// `sluice dashboard`: the page (page.ts), its JSON API (api.ts) and the chart library (uPlot, served from the
// installed package: no CDN, it works offline), on one HTTP server.
//
// Safety: on a loopback address anyone on the machine may read; bound to any other address every request
// must carry the token (Authorization: Bearer <token>, or ?token= when opening the page). Requeue, the only
// write, is a POST that needs the token or a same-origin request, and `readOnly` turns it off.
//
// States: listening -> closed.

import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import type { SluiceConfig } from '../core/config.js';
import { ConfigError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Shutdown } from '../core/shutdown.js';
import { openPool } from '../db/pool.js';
import { SeriesCache } from './stage-series.js';
import { handleApi, HttpError } from './api.js';
import { page } from './page.js';

export interface DashboardOptions {
  config: SluiceConfig;
  log: Logger;
  shutdown?: Shutdown;
}

export interface Dashboard {
  url: string;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  const { host, port, token, readOnly } = opts.config.dashboard;
  if (!LOOPBACK.has(host) && token === '') {
    throw new ConfigError([`dashboard.host: ${host} is not a loopback address, so a token is required: set --token or SLUICE_DASHBOARD_TOKEN`]);
  }
  const log = opts.log.child({ component: 'dashboard' });
  const pool = await openPool(opts.config.database, { poolSize: 4 });
  const uplotDir = dirname(createRequire(import.meta.url).resolve('uplot/package.json'));
  const ctx = { config: opts.config, pool, log, readOnly, shutdown: opts.shutdown, series: new SeriesCache() };
  const server: Server = createServer((req, res) => {
    serve(req, res, { token, needToken: !LOOPBACK.has(host) || token !== '', readOnly, uplotDir, api: (m, p, q, b) => handleApi(ctx, m, p, q, b) }).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) log.error({ err }, 'dashboard request failed');
      send(res, status, { error: err instanceof Error ? err.message : String(err) });
    });
  });
  await listen(server, host, port);
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/`;
  log.info({ url, readOnly, token: token !== '' }, 'dashboard listening');
  let closing: Promise<void> | null = null;
  return {
    url,
    close: () =>
      (closing ??= (async () => {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
        await pool.end().catch(() => {});
      })()),
  };
}

async function listen(server: Server, host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL' ? new ConfigError([`dashboard.port: cannot listen on ${host}:${port} (${err.code}); choose another --port`]) : err),
    );
    server.listen(port, host, () => resolve());
  });
}

interface Route {
  token: string;
  needToken: boolean;
  readOnly: boolean;
  uplotDir: string;
  api: (method: string, path: string, query: URLSearchParams, body: unknown) => Promise<unknown>;
}

async function serve(req: IncomingMessage, res: ServerResponse, r: Route): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://dashboard');
  const authorized = hasToken(req, url, r.token);
  if (r.needToken && !authorized) throw new HttpError(401, 'a token is required: Authorization: Bearer <token>, or ?token= on the page');
  if (req.method === 'GET' && url.pathname === '/') return void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(page({ readOnly: r.readOnly }));
  if (req.method === 'GET' && url.pathname === '/assets/uplot.js') return asset(res, join(r.uplotDir, 'dist/uPlot.iife.min.js'), 'text/javascript');
  if (req.method === 'GET' && url.pathname === '/assets/uplot.css') return asset(res, join(r.uplotDir, 'dist/uPlot.min.css'), 'text/css');
  if (!url.pathname.startsWith('/api/')) throw new HttpError(404, `no such page: ${url.pathname}`);
  let body: unknown = undefined;
  if (req.method === 'POST') {
    // A write from a page of another site would carry no token and another Origin: refused.
    if (!authorized && !sameOrigin(req)) throw new HttpError(403, 'a write needs the token or a same-origin request');
    body = await readJson(req);
  }
  send(res, 200, await r.api(req.method ?? 'GET', url.pathname, url.searchParams, body));
}

function hasToken(req: IncomingMessage, url: URL, token: string): boolean {
  if (token === '') return false;
  const given = (req.headers.authorization ?? '').replace(/^Bearer\s+/i, '') || url.searchParams.get('token') || '';
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  return typeof origin === 'string' && req.headers.host !== undefined && origin === `http://${req.headers.host}`;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of req) {
    text += String(chunk);
    if (text.length > 64 * 1024) throw new HttpError(413, 'request body too large');
  }
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, 'request body must be JSON');
  }
}

async function asset(res: ServerResponse, file: string, type: string): Promise<void> {
  res.writeHead(200, { 'content-type': `${type}; charset=utf-8`, 'cache-control': 'max-age=3600' }).end(await readFile(file));
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

