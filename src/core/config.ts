// Sluice's configuration: one defaults object, then layers that override it in this order:
//   defaults < config file (sluice.config.ts) < environment < CLI flags.
// The merged result is validated once, at start-up (config-validate.ts); everything after that may trust it.

import type { LevelWithSilent } from 'pino';
import { UnknownPipelineError } from './errors.js';

export type LogLevel = LevelWithSilent;

export interface DatabaseConfig {
  /**
   * mysql://user:password@host:port/database, where sluice keeps its ledger. No default: with none set (here,
   * DATABASE_URL or --database-url), commands that touch the database stop and say so. @defaultValue ''
   */
  url: string;
  /** Connections per process for the hot paths (mysql2). @defaultValue 10 */
  poolSize: number;
  /** Give up connecting after this long, so a dead server is reported in seconds. @defaultValue 3000 */
  connectTimeoutMs: number;
}

export interface KafkaSaslConfig {
  mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  username: string;
  password: string;
}

export interface KafkaTlsConfig {
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
}

export interface KafkaConfig {
  /** host:port of one or more brokers. @defaultValue ['127.0.0.1:9092'] */
  brokers: string[];
  /** @defaultValue 'sluice' */
  clientId: string;
  /** true, or TLS options (PEM strings). @defaultValue false */
  ssl: boolean | KafkaTlsConfig;
  sasl?: KafkaSaslConfig;
  /** @defaultValue 3000 */
  connectionTimeoutMs: number;
  /** @defaultValue 30000 */
  requestTimeoutMs: number;
  /** Retries of a failed request (with backoff) before the run reports the broker as down. @defaultValue 5 */
  retries: number;
}

export interface LogConfig {
  /** @defaultValue 'info' */
  level: LogLevel;
  /** Human-readable lines instead of JSON; 'auto' means when stderr is a terminal. @defaultValue 'auto' */
  pretty: boolean | 'auto';
}

export interface SourceConfig {
  /** The table holding one row per task (`table` or `database.table`). */
  table: string;
  /** Its unique key column: integers or strings of at most 512 characters. */
  key: string;
  /** Columns copied into each task's payload. */
  columns: string[];
  /**
   * An SQL condition on the source table's columns (trusted configuration, like stage code): only rows it
   * selects are tasks, for pages, counts, `status`, `--dry-run` and the workers' source check.
   * Checked at start by letting the database plan it. @defaultValue none (every row)
   */
  where?: string;
  /**
   * Shapes a row into the task payload (default: the row's `columns`). A row for which it throws, or whose
   * result cannot be serialised to JSON, is reported with its key and skipped.
   */
  payload?: (row: Record<string, unknown>) => unknown;
}

/**
 * One stage of a pipeline. The worker issue gives stage functions typed inputs and outputs; here the
 * configuration only needs their names and limits to validate them.
 */
export interface StageConfig {
  name: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- stage signatures are typed by definePipeline
  run: (input: any, ctx: any) => unknown;
  /** Calls in flight at once in one worker process. @defaultValue 8 */
  concurrency?: number;
  /** Calls started per second, at most. @defaultValue unlimited */
  ratePerSecond?: number;
  /** @defaultValue 60000 */
  timeoutMs?: number;
  retry?: { maxAttempts?: number; initialDelayMs?: number; maxDelayMs?: number };
}

/** A result table of the user's own: "done" means a row there, and workers write each result into it. */
export interface ResultsConfig {
  /** `table` or `database.table` on the same server. */
  table: string;
  /** The column holding the source key: NOT NULL, with a unique index of its own. */
  key: string;
  /** The columns `row` fills. */
  columns: string[];
  /** Maps the last stage's output to the row's columns (the key is added by sluice). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the output type is the user's
  row: (output: any, task: { key: string | number; payload: unknown }) => Record<string, unknown>;
  /** What a second result for the same key does: keep the first row, or update it. @defaultValue 'keep' */
  onConflict: 'keep' | 'update';
}

export interface PipelineConfig {
  /** @defaultValue `sluice.<pipeline name>` */
  topic: string;
  /** Used when sluice creates the topic. @defaultValue 6 */
  partitions: number;
  source: SourceConfig;
  /** The user's result table; without it, results go to sluice_results only. */
  results?: ResultsConfig;
  stages: StageConfig[];
}

export interface ProducerConfig {
  /** Flush a batch to Kafka when it reaches this many bytes (capped under the topic's max.message.bytes). @defaultValue 1048576 */
  batchBytes: number;
  /** ...or when its first message has waited this long. @defaultValue 200 */
  flushMs: number;
  /** Rows per anti-join page. @defaultValue 5000 */
  pageSize: number;
  /** @defaultValue 'none' */
  compression: 'none' | 'gzip';
  /** A task dispatched longer ago than this without a result counts as lost and is published again. @defaultValue 3600000 (1 h) */
  staleAfterMs: number;
  /** Progress log line interval when stderr is not a terminal. @defaultValue 5000 */
  progressIntervalMs: number;
}

export interface SpoolConfig {
  /** Each pipeline spools into `<dir>/<pipeline>`. @defaultValue './spool' */
  dir: string;
  /** Items per segment file (the unit workers claim). @defaultValue 500 */
  maxSegmentItems: number;
  /** A message larger than this is quarantined instead of spooled. @defaultValue 1048576 */
  maxItemBytes: number;
  /** Pause fetching above this many spooled items... @defaultValue 100000 */
  highWaterItems: number;
  /** ...and resume below this many. @defaultValue 50000 */
  lowWaterItems: number;
  /** Pause fetching above this many spooled bytes... @defaultValue 268435456 (256 MiB) */
  highWaterBytes: number;
  /** ...and resume below this many. @defaultValue 134217728 (128 MiB) */
  lowWaterBytes: number;
  /** How long a worker's claim on a segment lasts unless renewed. @defaultValue 60000 */
  leaseMs: number;
}

export interface FetcherConfig {
  /** Consumer group; every fetcher of a pipeline joins the same one. @defaultValue `sluice.<pipeline>` */
  groupId?: string;
  /** @defaultValue 1048576 */
  maxBytesPerPartition: number;
  /** Upper bound of one fetch, so memory stays bounded whatever the backlog. @defaultValue 8388608 */
  maxBytes: number;
  /** @defaultValue 30000 */
  sessionTimeoutMs: number;
  /** Interval of the `fetch stats` log line. @defaultValue 10000 */
  statsIntervalMs: number;
  /** Consecutive restarts of a crashed consumer before the fetcher gives up and exits. @defaultValue 10 */
  maxRestarts: number;
  /** First restart delay; doubles per consecutive restart, up to 30 s (10 restarts: about 3.5 min). @defaultValue 1000 */
  restartBackoffMs: number;
}

export interface WorkerConfig {
  /** Tasks in progress at once in one worker process, all stages together. @defaultValue 256 */
  maxInFlight: number;
  /** On shutdown, how long running stages may finish before they are aborted. @defaultValue 10000 */
  shutdownGraceMs: number;
  /** How often an idle worker looks for new segments. @defaultValue 200 */
  pollMs: number;
  /** Ledger writes per batch, and how long a batch waits to fill. @defaultValue 500, 5 */
  ledgerBatch: number;
  ledgerFlushMs: number;
  /**
   * Largest stage output (serialised JSON) the ledger stores; a task whose output is larger is quarantined
   * with the reason. Capped at start by the database's max_allowed_packet. @defaultValue 8388608 (8 MiB)
   */
  maxOutputBytes: number;
}

export interface MetricsConfig {
  /** Serve Prometheus metrics on this port from fetch, work and run; 0 turns the endpoint off. @defaultValue 0 */
  port: number;
  /** Address the endpoint listens on (0.0.0.0 to let a Prometheus on another machine scrape it). @defaultValue '127.0.0.1' */
  host: string;
}

/** Limits of a stage that does not set its own. */
export const stageDefaults = {
  concurrency: 8,
  timeoutMs: 60_000,
  retry: { maxAttempts: 3, initialDelayMs: 500, maxDelayMs: 30_000 },
} satisfies Required<Pick<StageConfig, 'concurrency' | 'timeoutMs'>> & { retry: Required<NonNullable<StageConfig['retry']>> };

export interface SluiceConfig {
  database: DatabaseConfig;
  kafka: KafkaConfig;
  log: LogConfig;
  producer: ProducerConfig;
  fetcher: FetcherConfig;
  worker: WorkerConfig;
  spool: SpoolConfig;
  metrics: MetricsConfig;
  pipelines: Record<string, PipelineConfig>;
}

type DeepPartial<T> = T extends (...args: never[]) => unknown
  ? T
  : T extends readonly (infer U)[]
    ? U[]
    : T extends object
      ? { [K in keyof T]?: DeepPartial<T[K]> }
      : T;

export type PipelineInput = Omit<PipelineConfig, 'topic' | 'partitions' | 'stages' | 'results'> & {
  topic?: string;
  partitions?: number;
  stages?: StageConfig[];
  results?: Omit<ResultsConfig, 'onConflict'> & { onConflict?: ResultsConfig['onConflict'] };
};

/** What a config file (or a test) provides: any subset of the settings. */
export type SluiceConfigInput = DeepPartial<Omit<SluiceConfig, 'pipelines'>> & {
  pipelines?: Record<string, PipelineInput>;
};

/** Identity function that gives sluice.config.ts its types. */
export function defineConfig(config: SluiceConfigInput): SluiceConfigInput {
  return config;
}

export const defaults = {
  database: {
    url: '',
    poolSize: 10,
    connectTimeoutMs: 3000,
  },
  kafka: {
    brokers: ['127.0.0.1:9092'],
    clientId: 'sluice',
    ssl: false,
    connectionTimeoutMs: 3000,
    requestTimeoutMs: 30000,
    retries: 5,
  },
  log: { level: 'info', pretty: 'auto' },
  producer: {
    batchBytes: 1024 * 1024,
    flushMs: 200,
    pageSize: 5000,
    compression: 'none',
    staleAfterMs: 60 * 60 * 1000,
    progressIntervalMs: 5000,
  },
  fetcher: {
    maxBytesPerPartition: 1024 * 1024,
    maxBytes: 8 * 1024 * 1024,
    sessionTimeoutMs: 30_000,
    statsIntervalMs: 10_000,
    maxRestarts: 10,
    restartBackoffMs: 1000,
  },
  worker: {
    maxInFlight: 256,
    shutdownGraceMs: 10_000,
    pollMs: 200,
    ledgerBatch: 500,
    ledgerFlushMs: 5,
    maxOutputBytes: 8 * 1024 * 1024,
  },
  spool: {
    dir: './spool',
    maxSegmentItems: 500,
    maxItemBytes: 1024 * 1024,
    highWaterItems: 100_000,
    lowWaterItems: 50_000,
    highWaterBytes: 256 * 1024 * 1024,
    lowWaterBytes: 128 * 1024 * 1024,
    leaseMs: 60_000,
  },
  metrics: { port: 0, host: '127.0.0.1' },
  pipelines: {},
} satisfies SluiceConfig;

export const pipelineDefaults = {
  partitions: 6,
} satisfies Partial<PipelineConfig>;

/** Config file names looked for, in this order, in the working directory and then its parents. */
export const CONFIG_FILES = ['sluice.config.ts', 'sluice.config.mts', 'sluice.config.js', 'sluice.config.mjs'] as const;

/** The named pipeline, or an UnknownPipelineError listing the configured ones. */
export function getPipeline(config: SluiceConfig, name: string): PipelineConfig {
  // Own properties only: 'constructor' or '__proto__' must not find Object.prototype's members.
  const p = Object.hasOwn(config.pipelines, name) ? config.pipelines[name] : undefined;
  if (p === undefined) throw new UnknownPipelineError(name, Object.keys(config.pipelines));
  return p;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
}

/** Deep merge of plain objects; arrays, functions and scalars from `over` replace; `undefined` is skipped. */
export function mergeLayers(base: unknown, over: unknown): unknown {
  if (over === undefined) return base;
  if (!isPlainObject(base) || !isPlainObject(over)) return over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = mergeLayers(base[k], v);
  }
  return out;
}
