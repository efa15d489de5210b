// The dashboard's JSON API (documented in docs/dashboard-and-metrics.md): what the page shows, for scripts too.
//   GET  /api/pipelines                              every configured pipeline
//   GET  /api/pipelines/:p                           status (counts, stages, errors, resources, processes, lag),
//                                                    ETA, bottleneck
//   GET  /api/pipelines/:p/stages?minutes=30         per stage: done per 30 s and latency p50/p99 over time
//   GET  /api/pipelines/:p/quarantine?key=&errorClass=&stage=&since=&until=   quarantined tasks, by filter
//   GET  /api/pipelines/:p/tasks/:key                one task's timeline (as `sluice inspect`)
//   POST /api/pipelines/:p/requeue {filter | all, dryRun, expect}   take matching tasks out of quarantine and publish
//        them: a dry run answers {matched, hash}; the requeue carries them back as `expect` (409 if the set changed)
//   POST /api/pipelines/:p/recompute {filter: {fromStage, key, includeOffline}, dryRun, expect}   publish the stale
//        done tasks (docs/recompute.md): a dry run answers {matched, hash, groups}; the same rules as a requeue
// Every input is validated first (api-input.ts): a request that does not fit is a 400 naming the field.

import { createHash } from 'node:crypto';
import type { SluiceConfig } from '../config/config.js';
import { getPipeline } from '../config/config.js';
import { SluiceError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Shutdown } from '../core/shutdown.js';
import { expireDispatches, releaseQuarantined } from '../ledger/dispatches.js';
import { inspectTask } from '../ledger/inspect.js';
import { checkPipelineTables } from '../user-tables/pipeline-tables.js';
import { displayKey, typedKey, type KeyShape } from '../user-tables/key-shape.js';
import type { Pool } from '../db/pool.js';
import type { SharedKafka } from '../kafka/lag.js';
import { produce } from '../producer/producer.js';
import { collectStatus, type StatusReport } from '../status/collect.js';
import {
  intParam,
  keySetHash,
  parseQuarantineQuery,
  parseRecompute,
  parseRequeue,
  pathParam,
  queryObject,
} from './api-input.js';
import { staleSet, stageVersions, type StaleRun } from '../producer/recompute.js';
import { mayBeStale } from '../ledger/stage-versions.js';
import { HttpError } from './http-error.js';
import { quarantined, quarantinedKeys } from '../ledger/quarantine-queries.js';
import { SeriesCache, stageSeries } from '../ledger/stage-series.js';

export interface ApiContext {
  config: SluiceConfig;
  pool: Pool;
  log: Logger;
  readOnly: boolean;
  shutdown?: Shutdown;
  /** The stage charts' final buckets, kept between refreshes. */
  series?: SeriesCache;
  /** Consumer lag from one shared, cached admin client. */
  lag?: (topic: string, groupId: string) => Promise<Record<string, number> | null>;
  /** The process's one Kafka client and admin, lent to a requeue's publish. */
  kafka?: SharedKafka;
}

type Handler = (ctx: ApiContext, params: string[], query: URLSearchParams, body: unknown) => Promise<unknown>;

const ROUTES: Array<[method: string, pattern: RegExp, handler: Handler]> = [
  [
    'GET',
    /^\/api\/pipelines$/,
    (ctx, _p, q) => {
      queryObject(q, []);
      const list = Object.values(ctx.config.pipelines).map((p) => ({
        name: p.name,
        topic: p.topic,
        table: p.source.table,
        stages: p.stages.map((s) => s.name),
      }));
      return Promise.resolve(list);
    },
  ],
  [
    'GET',
    /^\/api\/pipelines\/([^/]+)$/,
    async (ctx, [p], q) => {
      const { exact } = queryObject(q, ['exact']);
      if (exact !== undefined && exact !== '0' && exact !== '1')
        throw new HttpError(400, `query.exact: must be 0 or 1, got ${JSON.stringify(exact)}`);
      return overview(
        await collectStatus(ctx.config, pipelineName(ctx, p!), ctx.log, {
          exact: exact === '1' ? true : undefined,
          pool: ctx.pool,
          lag: ctx.lag,
        }),
      );
    },
  ],
  [
    'GET',
    /^\/api\/pipelines\/([^/]+)\/stages$/,
    async (ctx, [p], q) => {
      const name = pipelineName(ctx, p!);
      const minutes = intParam('minutes', queryObject(q, ['minutes']).minutes, 30, 1, 24 * 60);
      return stageSeries(
        ctx.pool,
        name,
        getPipeline(ctx.config, name).stages.map((s) => s.name),
        minutes,
        10,
        ctx.series,
      );
    },
  ],
  [
    'GET',
    /^\/api\/pipelines\/([^/]+)\/quarantine$/,
    async (ctx, [p], q) => {
      const { filter, limit } = parseQuarantineQuery(q);
      const name = pipelineName(ctx, p!);
      // The list needs only the ledger: with the user's tables gone or broken, keys are taken and shown as stored.
      const src = await checkPipelineTables(ctx.pool, getPipeline(ctx.config, name), { refuseMisfit: false }).catch(
        () => null,
      );
      if (filter.key !== undefined && src !== null) filter.key = canonical(src, filter.key);
      const found = await quarantined(ctx.pool, name, filter, limit);
      if (src === null) return found;
      return { ...found, tasks: found.tasks.map((t) => ({ ...t, key: displayKey(src, t.key) })) };
    },
  ],
  [
    'GET',
    /^\/api\/pipelines\/([^/]+)\/tasks\/(.+)$/,
    async (ctx, [p, key]) => {
      const name = pipelineName(ctx, p!);
      const src = await checkPipelineTables(ctx.pool, getPipeline(ctx.config, name), { refuseMisfit: false });
      const text = canonical(src, key!);
      const record = await inspectTask(ctx.pool, src, name, text, ctx.config.producer.staleAfterMs);
      // The page shows the key as people read it (a UUID with dashes); `keyText` is what the ledger holds.
      return { ...record, key: displayKey(src, text), keyText: text };
    },
  ],
  ['POST', /^\/api\/pipelines\/([^/]+)\/requeue$/, requeue],
  ['POST', /^\/api\/pipelines\/([^/]+)\/recompute$/, recompute],
];

export async function handleApi(
  ctx: ApiContext,
  method: string,
  path: string,
  query: URLSearchParams,
  body: unknown,
): Promise<unknown> {
  for (const [m, pattern, handler] of ROUTES) {
    const match = pattern.exec(path);
    if (match === null) continue;
    if (m !== method) throw new HttpError(405, `${method} is not allowed on ${path}`);
    return handler(ctx, match.slice(1).map(pathParam), query, body);
  }
  throw new HttpError(404, `no such endpoint: ${path}`);
}

/** A key as typed in the page (a UUID with or without dashes, a composite key's parts joined) as its canonical text. */
function canonical(shape: KeyShape, key: string): string {
  const typed = typedKey(shape, [key]);
  if ('error' in typed) throw new HttpError(400, `key: ${typed.error}`);
  return typed.text;
}

async function canonicalKey(ctx: ApiContext, name: string, key: string): Promise<string> {
  return canonical(await checkPipelineTables(ctx.pool, getPipeline(ctx.config, name), { refuseMisfit: false }), key);
}

function pipelineName(ctx: ApiContext, name: string): string {
  if (!Object.hasOwn(ctx.config.pipelines, name)) throw new HttpError(404, `unknown pipeline '${name}'`);
  return name;
}

/** Status, plus what the page computes from it: ETA from the recent rate, and the stage that holds the rest up. */
export function overview(s: StatusReport): StatusReport & { etaSeconds: number | null; bottleneck: string | null } {
  const left = s.pending + s.inFlight;
  const rate = s.throughput.resultsPerSecond;
  // The stage with the fewest done is where the others wait: work piles up before it.
  const slowest = [...s.stages].sort((a, b) => a.milestones - b.milestones || a.perSecond - b.perSecond)[0];
  const behind =
    slowest !== undefined && s.stages.some((x) => x.milestones > slowest.milestones)
      ? slowest.stage
      : s.stages.length > 0 && left > 0
        ? [...s.stages].sort((a, b) => a.perSecond - b.perSecond)[0]!.stage
        : null;
  return { ...s, etaSeconds: left === 0 ? 0 : rate > 0 ? Math.ceil(left / rate) : null, bottleneck: behind };
}

async function requeue(ctx: ApiContext, [p]: string[], _q: URLSearchParams, body: unknown): Promise<unknown> {
  const name = pipelineName(ctx, p!);
  const r = parseRequeue(body);
  if (r.filter.key !== undefined) r.filter.key = await canonicalKey(ctx, name, r.filter.key);
  const keys = await quarantinedKeys(ctx.pool, name, r.filter);
  const hash = keySetHash(keys);
  if (r.dryRun) return { matched: keys.length, hash, requeued: 0, published: 0, dryRun: true };
  if (ctx.readOnly) throw new HttpError(403, 'the dashboard is read-only (--read-only)');
  if (r.expect!.count !== keys.length || r.expect!.hash !== hash) {
    throw new HttpError(
      409,
      `the filter now matches ${keys.length} task(s), not the ${r.expect!.count} confirmed: look again and confirm`,
      { matched: keys.length, hash },
    );
  }
  if (keys.length === 0) return { matched: 0, hash, requeued: 0, published: 0 };
  await releaseQuarantined(ctx.pool, name, keys);
  await expireDispatches(ctx.pool, name, keys);
  ctx.log.info(
    { pipeline: name, filter: r.filter, requeued: keys.length },
    'quarantined tasks requeued from the dashboard',
  );
  try {
    // Only the released keys, and no counts: at 10M rows a whole produce pass would take the request 20 s.
    const s = await produce({
      config: ctx.config,
      pipeline: name,
      log: ctx.log,
      shutdown: ctx.shutdown,
      keys,
      count: false,
      pool: ctx.pool,
      kafka: ctx.kafka,
    });
    return { matched: keys.length, hash, requeued: keys.length, published: s.published };
  } catch (err) {
    // Released but not published: the next `produce` publishes them (they are pending now).
    throw new HttpError(
      503,
      `requeued ${keys.length} task(s), but publishing ` +
        `failed: ${err instanceof SluiceError ? err.message : String(err)}; run ` +
        `produce to publish them`,
    );
  }
}

/** The hash of an empty stale set, as staleSet computes it. */
const NOTHING_STALE = createHash('sha256').digest('hex').slice(0, 16);

async function recompute(ctx: ApiContext, [p]: string[], _q: URLSearchParams, body: unknown): Promise<unknown> {
  const name = pipelineName(ctx, p!);
  const r = parseRecompute(body);
  const pipeline = getPipeline(ctx.config, name);
  const { fromStage, includeOffline } = r.filter;
  if (fromStage !== undefined && !pipeline.stages.some((s) => s.name === fromStage))
    throw new HttpError(400, `body.filter.fromStage: no stage '${fromStage}' (stages: ${stageNames(pipeline)})`);
  const src = await checkPipelineTables(ctx.pool, pipeline, { refuseMisfit: false });
  const keys = r.filter.key === undefined ? undefined : [canonical(src, r.filter.key)];
  const run: StaleRun = {
    pool: ctx.pool,
    db: (_what, fn) => fn(),
    source: src,
    filter: {
      pipeline: name,
      stages: stageVersions(pipeline),
      ...(fromStage === undefined ? {} : { fromStage }),
      includeOffline: includeOffline === true,
      staleAfterMs: ctx.config.producer.staleAfterMs,
      ...(keys === undefined ? {} : { keys }),
    },
  };
  // Read only: a dry run writes nothing (not even the stage versions), in read-only mode too.
  const needed =
    fromStage !== undefined ||
    includeOffline === true ||
    (await mayBeStale(ctx.pool, name, run.filter.stages, run.filter.staleAfterMs));
  const set = needed ? await staleSet(run, !r.dryRun) : { groups: [], count: 0, hash: NOTHING_STALE, keys: [] };
  if (r.dryRun) return { matched: set.count, hash: set.hash, groups: set.groups, published: 0, dryRun: true };
  if (ctx.readOnly) throw new HttpError(403, 'the dashboard is read-only (--read-only)');
  if (r.expect!.count !== set.count || r.expect!.hash !== set.hash)
    throw new HttpError(
      409,
      `${set.count} task(s) are stale now, not the ${r.expect!.count} confirmed: look again and confirm`,
      { matched: set.count, hash: set.hash },
    );
  if (set.count === 0) return { matched: 0, hash: set.hash, published: 0 };
  ctx.log.info({ pipeline: name, filter: r.filter, tasks: set.count }, 'recompute started from the dashboard');
  const s = await produce({
    config: ctx.config,
    pipeline: name,
    log: ctx.log,
    shutdown: ctx.shutdown,
    count: false,
    pool: ctx.pool,
    kafka: ctx.kafka,
    // Exactly the set counted and confirmed: only its keys are read again (each still stale is published).
    keys: set.keys,
    recompute: {
      ...(fromStage === undefined ? {} : { fromStage }),
      includeOffline: includeOffline === true,
      staleOnly: true,
    },
  });
  return { matched: set.count, hash: set.hash, published: s.published };
}

const stageNames = (p: { stages: Array<{ name: string }> }): string => p.stages.map((s) => s.name).join(', ');
