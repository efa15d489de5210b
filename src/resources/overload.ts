// What counts as a sign that a service is overloaded: an OverloadError a stage throws on purpose, a stage
// timeout, a connection reset or refused, an HTTP 429 or 503. Looked for along the error's cause chain
// (a stage usually wraps the client's error).

import { SluiceError } from '../core/errors.js';
import { asText } from '../core/text.js';

/** Thrown by a stage to say: the service is overloaded (counts against an adaptive limit; retried). */
export class OverloadError extends SluiceError {
  constructor(message = 'the service is overloaded', options: { cause?: unknown } = {}) {
    super('OVERLOAD', message, { retriable: true, cause: options.cause });
  }
}

const CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'STAGE_TIMEOUT',
  'OVERLOAD',
]);
const STATUS = new Set([429, 503]);
const TEXT = /connection reset|socket hang up|ECONNRESET|\b429\b|\b503\b|too many requests|service unavailable/i;

export function isOverload(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== null && e !== undefined && depth < 5; depth++) {
    if (typeof e !== 'object') return TEXT.test(asText(e));
    const o = e as { code?: unknown; status?: unknown; statusCode?: unknown; message?: unknown; cause?: unknown };
    if (typeof o.code === 'string' && CODES.has(o.code)) return true;
    if (STATUS.has(Number(o.status)) || STATUS.has(Number(o.statusCode))) return true;
    if (typeof o.message === 'string' && TEXT.test(o.message)) return true;
    e = o.cause;
  }
  return false;
}
