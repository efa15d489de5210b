// What the dashboard's API accepts, as schemas (zod, as the config): a request that does not fit is answered
// 400 with the field named, before anything reads the database. Matching every quarantined task takes an
// explicit `{"all": true}`; a real requeue carries what its dry run showed (`expect`: count and hash of the
// keys), so it never acts on another set than the one the user confirmed.

import { createHash } from 'node:crypto';
import { z } from 'zod';
import { HttpError } from './http-error.js';
import type { QuarantineFilter } from '../ledger/quarantine-queries.js';

/** ISO-8601 as a date, or a date and a time with an optional zone: `Dec 25` or `1` are not times. */
const ISO = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;
const isoTime = z
  .string()
  .regex(ISO, { error: 'must be an ISO-8601 time such as 2026-11-26T08:00:00Z' })
  .refine((v) => !Number.isNaN(Date.parse(v)), { error: 'is not a real date' });
const text = z.string().min(1).max(512);

const filterShape = {
  key: text.optional(),
  errorClass: text.optional(),
  stage: text.optional(),
  since: isoTime.optional(),
  until: isoTime.optional(),
};

const filterSchema = z.strictObject(filterShape, {
  error: 'must be an object of key, errorClass, stage, since, until',
});

const requeueSchema = z.strictObject(
  {
    filter: filterSchema.optional(),
    all: z.literal(true, { error: 'must be true (or left out)' }).optional(),
    dryRun: z.boolean({ error: 'must be true or false' }).optional(),
    expect: z
      .strictObject(
        { count: z.int().min(0), hash: z.string().regex(/^[0-9a-f]{16}$/) },
        { error: 'must be {count, hash} from a dry run' },
      )
      .optional(),
  },
  { error: 'the body must be a JSON object' },
);

const expectSchema = z
  .strictObject(
    { count: z.int().min(0), hash: z.string().regex(/^[0-9a-f]{16}$/) },
    { error: 'must be {count, hash} from a dry run' },
  )
  .optional();

const recomputeSchema = z.strictObject(
  {
    filter: z
      .strictObject(
        {
          fromStage: text.optional(),
          key: text.optional(),
          includeOffline: z.boolean({ error: 'must be true or false' }).optional(),
        },
        { error: 'must be an object of fromStage, key, includeOffline' },
      )
      .optional(),
    dryRun: z.boolean({ error: 'must be true or false' }).optional(),
    expect: expectSchema,
  },
  { error: 'the body must be a JSON object' },
);

export interface RecomputeRequest {
  /** No field: the tasks stale by their stage versions. */
  filter: { fromStage?: string; key?: string; includeOffline?: boolean };
  dryRun: boolean;
  expect?: { count: number; hash: string };
}

/** A recompute's body: filters, never SQL; a real one carries what its dry run showed. */
export function parseRecompute(body: unknown): RecomputeRequest {
  const r = recomputeSchema.safeParse(body);
  if (!r.success) fail(r.error, 'body');
  if (r.data.dryRun !== true && r.data.expect === undefined)
    throw new HttpError(400, 'body.expect: a recompute carries the {count, hash} its dry run returned');
  return { filter: r.data.filter ?? {}, dryRun: r.data.dryRun === true, expect: r.data.expect };
}

export interface RequeueRequest {
  filter: QuarantineFilter;
  dryRun: boolean;
  expect?: { count: number; hash: string };
}

function fail(err: z.ZodError, where: string): never {
  const issue = err.issues[0]!;
  const path = issue.path.length === 0 ? where : `${where}.${issue.path.join('.')}`;
  const msg = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message;
  throw new HttpError(400, `${path}: ${msg}`);
}

export function parseRequeue(body: unknown): RequeueRequest {
  const r = requeueSchema.safeParse(body);
  if (!r.success) fail(r.error, 'body');
  const filter = r.data.filter ?? {};
  const empty = Object.values(filter).every((v) => v === undefined);
  if (empty && r.data.all !== true)
    throw new HttpError(
      400,
      'body.filter: give at least one of key, errorClass, stage, since, until, ' +
        'or {"all": true} to match every quarantined task',
    );
  if (!empty && r.data.all === true)
    throw new HttpError(400, 'body.all: a filter and {"all": true} do not go together');
  if (r.data.dryRun !== true && r.data.expect === undefined)
    throw new HttpError(400, 'body.expect: a requeue carries the {count, hash} its dry run returned');
  return { filter, dryRun: r.data.dryRun === true, expect: r.data.expect };
}

/** The quarantine search's query: the filter's fields and `limit`, nothing else. */
export function parseQuarantineQuery(q: URLSearchParams): { filter: QuarantineFilter; limit: number } {
  const { limit, ...rest } = queryObject(q);
  const r = filterSchema.safeParse(Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== '')));
  if (!r.success) fail(r.error, 'query');
  return { filter: r.data, limit: intParam('limit', limit, 200, 1, 5000) };
}

/** Query parameters as an object; a repeated one is refused (it would be ambiguous). */
export function queryObject(q: URLSearchParams, allowed?: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of q) {
    if (Object.hasOwn(out, k)) throw new HttpError(400, `query.${k}: given more than once`);
    if (allowed !== undefined && !allowed.includes(k))
      throw new HttpError(400, `query: unknown parameter ${k} (allowed: ${allowed.join(', ') || 'none'})`);
    out[k] = v;
  }
  return out;
}

export function intParam(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    throw new HttpError(400, `query.${name}: must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

/** A path segment, percent-decoded; malformed encoding is the client's error. */
export function pathParam(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, 'malformed percent-encoding in the path');
  }
}

/** What a requeue is checked against: how many keys, and a hash of them in order. */
export function keySetHash(keys: readonly string[]): string {
  const h = createHash('sha256');
  for (const k of [...keys].sort()) h.update(k).update('\u0000');
  return h.digest('hex').slice(0, 16);
}
