// Who may talk to the dashboard, checked before any handler runs:
//   1. Host: the Host header must name what the dashboard serves (a loopback name, or one of
//      dashboard.allowedHosts), else 421. A page of another site that rebinds its DNS name to 127.0.0.1 sends
//      its own name as Host, so it never gets further than this.
//   2. Token (when one is set): `Authorization: Bearer <token>`, or the session cookie that opening
//      `/?token=<token>` exchanged the token for (the redirect drops the token from the address bar, history
//      and the next request's logs), else 401.
//   3. Writes: a Bearer request, or a browser request whose Origin is one of the allowed hosts (http or https),
//      else 403. Origin is never compared with Host: both would come from the same caller.
// X-Forwarded-Host and -Proto count only with dashboard.trustProxy.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-error.js';

export const LOOPBACK_NAMES: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

export const SESSION_COOKIE = 'sluice_session';

/** Sessions kept at once; the oldest goes first (each needs the token to be made). */
const MAX_SESSIONS = 1000;

export interface GuardOptions {
  allowedHosts: readonly string[];
  token: string;
  trustProxy: boolean;
}

export type Access = 'open' | 'bearer' | 'session';

export class RequestGuard {
  readonly #names: Set<string>;
  readonly #token: Buffer | null;
  readonly #trustProxy: boolean;
  readonly #sessions = new Set<string>();

  constructor(o: GuardOptions) {
    this.#names = new Set([...LOOPBACK_NAMES, ...o.allowedHosts.map((h) => h.toLowerCase())]);
    this.#token = o.token === '' ? null : Buffer.from(o.token);
    this.#trustProxy = o.trustProxy;
  }

  /** Host, then token: how the request is authorized, or an HttpError (421, 401). */
  admit(req: IncomingMessage): Access {
    this.assertHost(req);
    if (this.#token === null) return 'open';
    if (this.#bearerOk(req)) return 'bearer';
    if (this.#sessions.has(cookie(req, SESSION_COOKIE) ?? '')) return 'session';
    throw new HttpError(401, 'a token is required: Authorization: Bearer <token>, or open /?token=<token> once');
  }

  assertHost(req: IncomingMessage): void {
    const host = this.#header(req, 'x-forwarded-host') ?? req.headers.host;
    if (host === undefined || !this.#names.has(hostName(host))) {
      throw new HttpError(
        421,
        `this dashboard does not serve host ${JSON.stringify(host ?? '')}: add it to dashboard.allowedHosts`,
      );
    }
  }

  /** A write from a browser must come from a page of this dashboard; a Bearer request is not a browser's. */
  assertWrite(req: IncomingMessage, access: Access): void {
    if (access === 'bearer') return;
    const origin = req.headers.origin;
    let ok = false;
    try {
      const u = new URL(origin ?? '');
      ok = (u.protocol === 'http:' || u.protocol === 'https:') && this.#names.has(u.hostname.toLowerCase());
    } catch {
      ok = false;
    }
    if (!ok)
      throw new HttpError(
        403,
        "a write needs the token (Authorization: Bearer) or a request from this dashboard's own page",
      );
  }

  /** `token` from `/?token=`: a new session's Set-Cookie value, or null when the token is wrong (or none is set). */
  exchange(given: string, req: IncomingMessage): string | null {
    if (this.#token === null || !same(Buffer.from(given), this.#token)) return null;
    const id = randomBytes(32).toString('base64url');
    this.#sessions.add(id);
    if (this.#sessions.size > MAX_SESSIONS) this.#sessions.delete(this.#sessions.values().next().value!);
    const secure = this.#header(req, 'x-forwarded-proto') === 'https' ? '; Secure' : '';
    return `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/${secure}`;
  }

  #bearerOk(req: IncomingMessage): boolean {
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    return m !== null && same(Buffer.from(m[1]!), this.#token!);
  }

  #header(req: IncomingMessage, name: string): string | undefined {
    if (!this.#trustProxy) return undefined;
    const v = req.headers[name];
    return typeof v === 'string' ? v.split(',')[0]!.trim() : undefined;
  }
}

/** "Example.com:7460" -> "example.com"; "[::1]:7460" -> "[::1]". */
export function hostName(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  return h.replace(/:\d*$/, '');
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

function same(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
