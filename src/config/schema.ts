// The one configuration schema (zod 4). Each setting is declared here once, with its type and bounds, its
// default, the sentence that documents it, and the environment variable and CLI flag that may set it.
// Everything else derives from it: the TypeScript types (config.ts), the defaults, validation with key
// paths (validate.ts), the environment and flag layers (load.ts), `--help` and docs/configuration.md's
// configuration table (`npm run docs:config`).

import { z } from 'zod';
import { IDENTIFIER_RULE, isIdentifier, isQualifiedIdentifier } from '../core/identifiers.js';

/**
 * Node's timers hold at most 2^31-1 ms (about 24.8 days); a longer delay fires after 1 ms. Every duration is bounded
 * by it.
 */
export const MAX_MS = 2 ** 31 - 1;
/** Kafka's protocol counts bytes in signed 32-bit integers. */
const MAX_INT32 = 2 ** 31 - 1;

export const PIPELINE_NAME = /^[a-z][a-z0-9_-]{0,63}$/;
export const PIPELINE_NAME_RULE = 'lowercase letters, digits, - and _, starting with a letter, at most 64';
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;
const BROKER = /^[^\s:/]+:\d{1,5}$/;

/** How a raw environment or flag value becomes the setting's value before the schema checks it. */
export type RawInput = 'text' | 'int' | 'bool' | 'list' | 'duration';

export interface SettingMeta {
  doc: string;
  env?: string;
  /** Flag name without dashes; `commands` says which commands accept it (default: every command). */
  flag?: string;
  commands?: readonly string[];
  input?: RawInput;
  /** Never echoed in messages. */
  secret?: boolean;
  /** A flag that turns the setting off (`--no-panel`): its value is the opposite of what it says. */
  invert?: boolean;
  /** The default as docs/configuration.md shows it, when the value alone says too little. */
  shownDefault?: string;
}

export const settingMeta = z.registry<SettingMeta>();

function setting<T extends z.ZodType>(schema: T, meta: SettingMeta): T {
  settingMeta.add(schema, meta);
  return schema;
}

const intRule = (min: number, max: number): string => `must be an integer from ${min} to ${max}`;
const int = (min: number, max: number = Number.MAX_SAFE_INTEGER) => {
  const error = intRule(min, max);
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
};
const text = (error = 'must be a non-empty string') => z.string({ error }).min(1, { error });
const oneOf = <const T extends readonly [string, ...string[]]>(values: T, error: string) => z.enum(values, { error });
const fn = <F>(error: string) => z.custom<F>((v) => typeof v === 'function', { error });
const identifier = (qualified = false) =>
  z.custom<string>((v) => (qualified ? isQualifiedIdentifier(v) : isIdentifier(v)), {
    error: `must be an SQL identifier${qualified ? ' (or database.table)' : ''}: ${IDENTIFIER_RULE}`,
  });

/** A key: one column, or the columns of a composite key in their index's order. */
const keyColumnsSchema = () =>
  z.custom<string | string[]>(
    (v) =>
      isIdentifier(v) ||
      (Array.isArray(v) &&
        v.length >= 1 &&
        v.length <= 16 &&
        v.every(isIdentifier) &&
        new Set(v.map((c: string) => c.toLowerCase())).size === v.length),
    {
      error:
        `must be an SQL identifier, or an array of the distinct columns of a composite key ` +
        `(['tenant_id', 'id']): ${IDENTIFIER_RULE}`,
    },
  );

/** A strict object whose unknown keys are reported with the allowed ones. */
function section<S extends z.ZodRawShape>(shape: S) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (iss) => (iss.code === 'unrecognized_keys' ? `unknown key (allowed: ${allowed})` : 'must be an object'),
  });
}

const databaseUrl = z.string({ error: 'must be a string' }).superRefine((url, ctx) => {
  // '' is "not set": allowed here (commands that need no database work), refused where a pool is opened.
  if (url === '') return;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    ctx.addIssue({
      code: 'custom',
      message: 'must be a URL like mysql://user:password@host:3306/database (value hidden)',
    });
    return;
  }
  if (parsed.protocol !== 'mysql:' && parsed.protocol !== 'mariadb:')
    ctx.addIssue({ code: 'custom', message: `must start with mysql:// or mariadb://, got ${parsed.protocol}//...` });
  const db = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (!isIdentifier(db))
    ctx.addIssue({ code: 'custom', message: `must name a database (${IDENTIFIER_RULE}), got ${JSON.stringify(db)}` });
});

const database = section({
  url: setting(databaseUrl.default(''), {
    doc:
      'mysql://user:password@host:port/database, where sluice keeps its ledger. ' +
      'No default: commands that touch the database stop and say so.',
    env: 'DATABASE_URL',
    flag: 'database-url',
    secret: true,
    shownDefault: 'none: must be set',
  }),
  poolSize: setting(int(1, 1000).default(4), {
    doc:
      'Most connections any one process of sluice holds (produce, fetch, work, ' +
      'run, dashboard, demo: one pool each, shared by all it starts). Budget: ' +
      'processes × poolSize; see docs/operations.md, Connections.',
    env: 'SLUICE_DB_POOL_SIZE',
    input: 'int',
  }),
  connectTimeoutMs: setting(int(100, 600_000).default(3000), {
    doc: 'Give up connecting after this long, so a dead server is reported in seconds.',
    env: 'SLUICE_DB_CONNECT_TIMEOUT_MS',
    input: 'int',
  }),
});

const tls = section({
  ca: z.string().optional(),
  cert: z.string().optional(),
  key: z.string().optional(),
  rejectUnauthorized: z.boolean().optional(),
});
const sasl = section({
  mechanism: setting(
    oneOf(['plain', 'scram-sha-256', 'scram-sha-512'], 'must be one of plain, scram-sha-256, scram-sha-512'),
    { doc: 'SASL mechanism.', env: 'SLUICE_KAFKA_SASL_MECHANISM' },
  ),
  username: setting(text(), { doc: 'SASL user.', env: 'SLUICE_KAFKA_SASL_USERNAME' }),
  password: setting(z.string({ error: 'must be a string (value hidden)' }), {
    doc: 'SASL password.',
    env: 'SLUICE_KAFKA_SASL_PASSWORD',
    secret: true,
  }),
});

const kafka = section({
  brokers: setting(
    z
      .array(text().regex(BROKER, { error: 'must be host:port' }), { error: 'must be a non-empty list of host:port' })
      .min(1, { error: 'must be a non-empty list of host:port' })
      .default(['127.0.0.1:9092']),
    {
      doc: 'host:port of one or more brokers (comma-separated in the environment and the flag).',
      env: 'SLUICE_KAFKA_BROKERS',
      flag: 'brokers',
      input: 'list',
    },
  ),
  clientId: setting(text().default('sluice'), { doc: 'Kafka client id.', env: 'SLUICE_KAFKA_CLIENT_ID' }),
  ssl: setting(
    z
      .union([z.boolean(), tls], { error: 'must be true, false or TLS options { ca, cert, key, rejectUnauthorized }' })
      .default(false),
    { doc: 'true, or TLS options (PEM strings) in the file.', env: 'SLUICE_KAFKA_SSL', input: 'bool', secret: true },
  ),
  sasl: sasl.optional(),
  connectionTimeoutMs: setting(int(100, 600_000).default(3000), {
    doc: 'Give up connecting to a broker after this long.',
    env: 'SLUICE_KAFKA_CONNECTION_TIMEOUT_MS',
    input: 'int',
  }),
  requestTimeoutMs: setting(int(100, 600_000).default(30_000), { doc: 'Give up on one request after this long.' }),
  retries: setting(int(0, 100).default(8), {
    doc:
      'Retries of a failed request before the run reports the broker as down; ' +
      'with the backoff below, ~40 s: longer than a cluster takes to move a ' +
      'dead leader (docs/operations.md, "Running beside production").',
    env: 'SLUICE_KAFKA_RETRIES',
    input: 'int',
  }),
  retryInitialMs: setting(int(10, 600_000).default(500), {
    doc: 'First pause before a retry; doubles per retry...',
    env: 'SLUICE_KAFKA_RETRY_INITIAL_MS',
    input: 'int',
  }),
  retryMaxMs: setting(int(10, 600_000).default(8000), {
    doc: '...up to this long.',
    env: 'SLUICE_KAFKA_RETRY_MAX_MS',
    input: 'int',
  }),
});

const log = section({
  level: setting(
    oneOf(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      'must be one of fatal, error, warn, info, debug, trace, silent',
    ).default('info'),
    { doc: 'Log level.', env: 'SLUICE_LOG_LEVEL', flag: 'log-level' },
  ),
  pretty: setting(
    z.union([z.boolean(), z.literal('auto')], { error: "must be true, false or 'auto'" }).default('auto'),
    {
      doc: "Human-readable lines instead of JSON; 'auto': when stderr is a terminal.",
      env: 'SLUICE_LOG_PRETTY',
      input: 'bool',
    },
  ),
  panel: setting(
    z.union([z.boolean(), z.literal('auto')], { error: "must be true, false or 'auto'" }).default('auto'),
    {
      doc:
        'A live panel at the bottom of the terminal for demo, work, run and ' +
        "fetch, log records one line each above it; 'auto': when stderr is a " +
        'terminal.',
      env: 'SLUICE_LOG_PANEL',
      flag: 'no-panel',
      commands: ['demo', 'work', 'run', 'fetch'],
      input: 'bool',
      invert: true,
    },
  ),
});

const producer = section({
  batchBytes: setting(int(1024, 64 * 1024 * 1024).default(1024 * 1024), {
    doc: "Flush a batch to Kafka at this many bytes (capped under the topic's max.message.bytes).",
    env: 'SLUICE_BATCH_BYTES',
    flag: 'batch-bytes',
    commands: ['produce'],
    input: 'int',
  }),
  flushMs: setting(int(1, 600_000).default(200), {
    doc: '...or when its first message has waited this long.',
    env: 'SLUICE_FLUSH_MS',
    flag: 'flush-ms',
    commands: ['produce'],
    input: 'int',
  }),
  pageSize: setting(int(1, 1_000_000).default(5000), {
    doc: 'Rows per anti-join page.',
    env: 'SLUICE_PAGE_SIZE',
    flag: 'page-size',
    commands: ['produce'],
    input: 'int',
  }),
  compression: setting(oneOf(['none', 'gzip'], "must be 'none' or 'gzip'").default('none'), {
    doc: 'Compression of published batches.',
    env: 'SLUICE_COMPRESSION',
  }),
  staleAfterMs: setting(int(0, MAX_MS).default(3_600_000), {
    doc:
      'A task dispatched longer ago than this without a result counts as lost ' +
      'and is published again (flag: 90s, 30m, 1h).',
    env: 'SLUICE_STALE_AFTER',
    flag: 'stale-after',
    commands: ['produce'],
    input: 'duration',
    shownDefault: '3600000 (1 h)',
  }),
  progressIntervalMs: setting(int(100, MAX_MS).default(5000), {
    doc: 'Progress log line interval when stderr is not a terminal.',
  }),
});

const spool = section({
  dir: setting(text().default('./spool'), {
    doc: 'Each pipeline spools into <dir>/<pipeline>.',
    env: 'SLUICE_SPOOL_DIR',
    flag: 'spool-dir',
    commands: ['fetch', 'work', 'run', 'status'],
  }),
  maxSegmentItems: setting(int(1, 1_000_000).default(500), { doc: 'Items per segment file (the unit workers claim).' }),
  maxItemBytes: setting(int(1024, 256 * 1024 * 1024).default(1024 * 1024), {
    doc: 'A message larger than this is quarantined instead of spooled.',
  }),
  highWaterItems: setting(int(1, 1_000_000_000).default(100_000), {
    doc: 'Pause fetching above this many spooled items...',
    env: 'SLUICE_SPOOL_HIGH_WATER_ITEMS',
    input: 'int',
  }),
  lowWaterItems: setting(int(0, 1_000_000_000).default(50_000), {
    doc: '...and resume below this many.',
    env: 'SLUICE_SPOOL_LOW_WATER_ITEMS',
    input: 'int',
  }),
  highWaterBytes: setting(int(1024).default(256 * 1024 * 1024), {
    doc: 'Pause fetching above this many spooled bytes...',
    env: 'SLUICE_SPOOL_HIGH_WATER_BYTES',
    input: 'int',
    shownDefault: '268435456 (256 MiB)',
  }),
  lowWaterBytes: setting(int(0).default(128 * 1024 * 1024), {
    doc: '...and resume below this many.',
    env: 'SLUICE_SPOOL_LOW_WATER_BYTES',
    input: 'int',
    shownDefault: '134217728 (128 MiB)',
  }),
  leaseMs: setting(int(100, MAX_MS).default(60_000), {
    doc: "How long a worker's claim on a segment lasts unless renewed.",
  }),
  minFreeBytes: setting(int(0).default(64 * 1024 * 1024), {
    doc:
      "Pause fetching while a batch would leave the spool's file system less " +
      'free space than this (resume at this plus fetcher.maxBytes; 0: only a ' +
      'failed write pauses).',
    env: 'SLUICE_SPOOL_MIN_FREE_BYTES',
    input: 'int',
    shownDefault: '67108864 (64 MiB)',
  }),
});

const fetcher = section({
  groupId: setting(text().optional(), {
    doc: 'Consumer group; every fetcher of a pipeline joins the same one.',
    env: 'SLUICE_FETCH_GROUP_ID',
    shownDefault: 'sluice.<pipeline>',
  }),
  maxBytesPerPartition: setting(int(1024, MAX_INT32).default(1024 * 1024), {
    doc: 'Upper bound of one fetch per partition.',
  }),
  maxBytes: setting(int(1024, MAX_INT32).default(8 * 1024 * 1024), {
    doc: 'Upper bound of one fetch, so memory stays bounded whatever the backlog.',
  }),
  sessionTimeoutMs: setting(int(6000, 600_000).default(30_000), { doc: 'Kafka consumer session timeout.' }),
  statsIntervalMs: setting(int(100, MAX_MS).default(10_000), { doc: 'Interval of the `fetch stats` log line.' }),
  maxRestarts: setting(int(0, 1000).default(10), {
    doc: 'Consecutive restarts of a crashed consumer before the fetcher gives up and exits.',
  }),
  restartBackoffMs: setting(int(10, 600_000).default(1000), {
    doc: 'First restart delay; doubles per consecutive restart, up to 30 s.',
  }),
});

const worker = section({
  maxInFlight: setting(int(1, 100_000).optional(), {
    doc:
      'Tasks in progress at once in one worker process, all stages together ' +
      '(default: 256, or twice the largest stage concurrency when that is more, ' +
      'so that tasks waiting on the ledger never starve a stage).',
    shownDefault: '256 or 2 × the largest stage concurrency',
  }),
  shutdownGraceMs: setting(int(0, 3_600_000).default(10_000), {
    doc: 'On shutdown, how long running stages may finish before they are aborted.',
  }),
  pollMs: setting(int(1, 60_000).default(200), { doc: 'How often an idle worker looks for new segments.' }),
  ledgerBatch: setting(int(1, 100_000).default(500), { doc: 'Ledger writes per batch.' }),
  ledgerFlushMs: setting(int(0, 60_000).default(5), { doc: 'How long a ledger batch waits to fill.' }),
  maxOutputBytes: setting(int(1024, 1024 * 1024 * 1024).default(8 * 1024 * 1024), {
    doc: "Largest stage output (JSON) the ledger stores; capped at start by the server's max_allowed_packet.",
    shownDefault: '8388608 (8 MiB)',
  }),
});

const metrics = section({
  port: setting(int(0, 65535).default(0), {
    doc: 'Serve Prometheus metrics on this port from fetch, work and run; 0 turns the endpoint off.',
    env: 'SLUICE_METRICS_PORT',
    flag: 'metrics-port',
    commands: ['fetch', 'work', 'run'],
    input: 'int',
  }),
  host: setting(text().default('127.0.0.1'), {
    doc: 'Address the endpoint listens on (0.0.0.0 to be scraped from another machine).',
    env: 'SLUICE_METRICS_HOST',
  }),
});

const dashboard = section({
  port: setting(int(1, 65535).default(7460), {
    doc: 'Port of `sluice dashboard`.',
    env: 'SLUICE_DASHBOARD_PORT',
    flag: 'port',
    commands: ['dashboard'],
    input: 'int',
  }),
  host: setting(text().default('127.0.0.1'), {
    doc: 'Address the dashboard listens on; any other than loopback requires a token.',
    env: 'SLUICE_DASHBOARD_HOST',
    flag: 'host',
    commands: ['dashboard'],
  }),
  allowedHosts: setting(
    z
      .array(
        text().regex(/^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$/, {
          error: 'must be a host name or address, without scheme or port',
        }),
        { error: 'must be a list of host names' },
      )
      .default([]),
    {
      doc:
        'Host names browsers use to reach the dashboard (its Host header must be ' +
        'one of them, or a loopback name); required when dashboard.host is not ' +
        'loopback.',
      env: 'SLUICE_DASHBOARD_ALLOWED_HOSTS',
      flag: 'allowed-hosts',
      commands: ['dashboard'],
      input: 'list',
    },
  ),
  trustProxy: setting(z.boolean({ error: 'must be true or false' }).default(false), {
    doc:
      'Behind a reverse proxy: take the host and scheme from X-Forwarded-Host ' +
      'and X-Forwarded-Proto (never trusted otherwise).',
    env: 'SLUICE_DASHBOARD_TRUST_PROXY',
    input: 'bool',
  }),
  token: setting(z.string({ error: 'must be a string (value hidden)' }).default(''), {
    doc:
      'Token every request must carry (Authorization: Bearer, or a session ' +
      'cookie from opening /?token=); required off loopback. Prefer tokenFile ' +
      'or the environment: a --token flag shows in ps.',
    env: 'SLUICE_DASHBOARD_TOKEN',
    flag: 'token',
    commands: ['dashboard'],
    secret: true,
    shownDefault: 'none',
  }),
  tokenFile: setting(z.string({ error: 'must be a path' }).default(''), {
    doc: 'File holding the token (its first line); instead of dashboard.token.',
    env: 'SLUICE_DASHBOARD_TOKEN_FILE',
    flag: 'token-file',
    commands: ['dashboard'],
    shownDefault: 'none',
  }),
  readOnly: setting(z.boolean({ error: 'must be true or false' }).default(false), {
    doc: 'Turns requeue (the only write) off.',
    env: 'SLUICE_DASHBOARD_READ_ONLY',
    flag: 'read-only',
    commands: ['dashboard'],
    input: 'bool',
  }),
});

// A method's parameters are bivariant: a stage typed by pipeline() (or a row() of the user's result type) fits
// these without `any`.
type StageFn = { run(input: unknown, ctx: unknown): unknown }['run'];
type RowFn = {
  row(
    output: unknown,
    task: { key: string | number; parts?: Array<string | number>; payload: unknown },
  ): Record<string, unknown>;
}['row'];

const versionRule = "must be a text or a number of 1 to 64 characters, such as '2026-12-ner-large'";

export const stageSchema = section({
  name: text().regex(PIPELINE_NAME, { error: 'must be lowercase letters, digits, - and _, starting with a letter' }),
  run: fn<StageFn>('must be a function (input, ctx) => output'),
  /** Calls in flight at once in one worker process (default 8). */
  concurrency: int(1, 10_000).optional(),
  /** Calls started per second, at most (default unlimited). */
  ratePerSecond: z
    .number({ error: 'must be a number from 0.001 to 1000000' })
    .min(0.001, { error: 'must be a number from 0.001 to 1000000' })
    .max(1_000_000, { error: 'must be a number from 0.001 to 1000000' })
    .optional(),
  /** Default 60000. */
  timeoutMs: int(1, MAX_MS).optional(),
  retry: section({
    maxAttempts: int(1, 1000).optional(),
    initialDelayMs: int(0, MAX_MS).optional(),
    maxDelayMs: int(0, MAX_MS).optional(),
  }).optional(),
  /** A named resource (top-level `resources`) whose fleet-wide limit this stage's calls count against. */
  resource: text()
    .regex(PIPELINE_NAME, { error: 'must name a resource: lowercase letters, digits, - and _' })
    .optional(),
  /**
   * The stage's version (default '1'): a done task whose milestone of this stage was written by another version is
   * stale (`produce --recompute`). Compared as text; a number is its decimal text.
   */
  version: z
    .union([z.string(), z.number()], { error: versionRule })
    .transform(String)
    .pipe(z.string().min(1, { error: versionRule }).max(64, { error: versionRule }))
    .optional(),
});

const rateRule = 'must be a number from 0.001 to 1000000';
/**
 * A service several stages, pipelines and processes share, limited fleet-wide: calls in flight at once
 * (`concurrency`, a number or 'auto' to learn it) and/or calls started per second (`ratePerSecond`, with
 * `burst`). Shares of the limit are leased to live processes through the database.
 */
export const resourceSchema = section({
  concurrency: z
    .union([int(1, 100_000), z.literal('auto')], { error: "must be an integer from 1 to 100000 or 'auto'" })
    .optional(),
  /** With 'auto': the window never goes below `min` nor above `max`; it starts at `min`. */
  min: int(1, 100_000).optional(),
  max: int(1, 100_000).optional(),
  ratePerSecond: z
    .number({ error: rateRule })
    .min(0.001, { error: rateRule })
    .max(1_000_000, { error: rateRule })
    .optional(),
  /** Calls that may start at once above the rate (fleet-wide). Default: one second's worth, at least 1. */
  burst: int(0, 1_000_000).optional(),
  /**
   * How long a process's share lasts unless renewed; a dead process's share returns after it. Default: long enough
   * for the longest timeout of the stages using it + 3 s, after the 10% margin.
   */
  leaseMs: int(1000, MAX_MS).optional(),
});

const sourceSchema = section({
  /** The table holding one row per task (`table` or `database.table`). */
  table: identifier(true),
  /**
   * Its unique, NOT NULL key: one column (integer, text, BINARY/VARBINARY or UUID), or the columns of a composite
   * primary key or unique index in the index's order.
   */
  key: keyColumnsSchema(),
  /** Columns copied into each task's payload. */
  columns: z.array(identifier(), { error: 'must be an array of column names' }),
  /** An SQL condition on the source table's columns (trusted configuration): only rows it selects are tasks. */
  where: z
    .string({ error: 'must be an SQL condition (no semicolon)' })
    .refine((w) => w.trim() !== '' && !w.includes(';'), { error: 'must be an SQL condition (no semicolon)' })
    .optional(),
  /** Shapes a row into the task payload (default: the row's `columns`). */
  payload: fn<(row: Record<string, unknown>) => unknown>('must be a function (row) => payload').optional(),
});

const resultsSchema = section({
  /** `table` or `database.table` on the same server. */
  table: identifier(true),
  /**
   * The column holding the source key (NOT NULL, with a unique index of its own); for a composite source key, one
   * column per part in the same order, with a unique index over them.
   */
  key: keyColumnsSchema(),
  /** The columns `row` fills. */
  columns: z
    .array(identifier(), { error: 'must be a non-empty array of column names' })
    .min(1, { error: 'must be a non-empty array of column names' }),
  /** Maps the last stage's output to the row's columns (the key is added by sluice). */
  row: fn<RowFn>('must be a function (output, task) => ({ column: value })'),
  /** What a second result for the same key does: keep the first row, or update it. */
  onConflict: oneOf(['keep', 'update'], "must be 'keep' or 'update'").default('keep'),
  /**
   * Accept a key column that can merge source keys (a collation that takes 'abc' and 'ABC' for one) or cut
   * them: source rows that share a result row are then all done by it. Without it such a column is refused.
   */
  mergeKeys: z.boolean({ error: 'must be true or false' }).default(false),
});

export const pipelineSchema = section({
  /** Default `sluice.<pipeline name>`. */
  topic: text()
    .regex(TOPIC_NAME, { error: 'must be a Kafka topic name: letters, digits, . _ and -, at most 249' })
    .optional(),
  /** Used when sluice creates the topic. */
  partitions: int(1, 10_000).default(6),
  /** Replicas of each partition when sluice creates the topic (default: the cluster's default.replication.factor). */
  replicationFactor: int(1, 32_767).optional(),
  /**
   * The topic's min.insync.replicas when sluice creates it (default: the cluster's); with acks=all, a write needs
   * this many replicas.
   */
  minInsyncReplicas: int(1, 32_767).optional(),
  source: sourceSchema,
  /** The user's result table; without it, results go to sluice_results only. */
  results: resultsSchema.optional(),
  stages: z.array(stageSchema, { error: 'must be an array of stages' }).default([]),
});

export const configSchema = section({
  database: database.prefault({}),
  kafka: kafka.prefault({}),
  log: log.prefault({}),
  producer: producer.prefault({}),
  fetcher: fetcher.prefault({}),
  worker: worker.prefault({}),
  spool: spool.prefault({}),
  metrics: metrics.prefault({}),
  dashboard: dashboard.prefault({}),
  resources: z.record(z.string(), resourceSchema, { error: 'must be an object' }).prefault({}),
  pipelines: z.record(z.string(), pipelineSchema, { error: 'must be an object' }).prefault({}),
});
