// Validates a merged configuration once, at start-up, and fills pipeline defaults. Every problem is
// reported with the key it belongs to (`pipelines.demo.source.table: ...`), all at once, so a user fixes a
// file in one pass instead of one error per run.

import { ConfigError } from './errors.js';
import { IDENTIFIER_RULE, isIdentifier, isQualifiedIdentifier } from './identifiers.js';
import { pipelineDefaults, type PipelineConfig, type SluiceConfig, type StageConfig } from './config.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'];
const PIPELINE_NAME = /^[a-z][a-z0-9_-]{0,63}$/;
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;
const BROKER = /^[^\s:/]+:\d{1,5}$/;
/** Node's timers hold at most 2^31-1 ms (about 24.8 days); a longer delay fires after 1 ms. Every duration is bounded by it. */
export const MAX_MS = 2 ** 31 - 1;
/** Kafka's protocol counts bytes in signed 32-bit integers. */
const MAX_INT32 = 2 ** 31 - 1;

const KNOWN_KEYS: Record<string, readonly string[]> = {
  '': ['database', 'kafka', 'log', 'producer', 'fetcher', 'worker', 'spool', 'metrics', 'pipelines'],
  metrics: ['port', 'host'],
  worker: ['maxInFlight', 'shutdownGraceMs', 'pollMs', 'ledgerBatch', 'ledgerFlushMs', 'maxOutputBytes'],
  database: ['url', 'poolSize', 'connectTimeoutMs'],
  kafka: ['brokers', 'clientId', 'ssl', 'sasl', 'connectionTimeoutMs', 'requestTimeoutMs', 'retries'],
  producer: ['batchBytes', 'flushMs', 'pageSize', 'compression', 'staleAfterMs', 'progressIntervalMs'],
  'kafka.sasl': ['mechanism', 'username', 'password'],
  log: ['level', 'pretty'],
  spool: ['dir', 'maxSegmentItems', 'maxItemBytes', 'highWaterItems', 'lowWaterItems', 'highWaterBytes', 'lowWaterBytes', 'leaseMs'],
  fetcher: ['groupId', 'maxBytesPerPartition', 'maxBytes', 'sessionTimeoutMs', 'statsIntervalMs', 'maxRestarts', 'restartBackoffMs'],
  pipeline: ['topic', 'partitions', 'source', 'results', 'stages'],
  source: ['table', 'key', 'columns', 'payload', 'where'],
  results: ['table', 'key', 'columns', 'row', 'onConflict'],
  stage: ['name', 'run', 'concurrency', 'ratePerSecond', 'timeoutMs', 'retry'],
  retry: ['maxAttempts', 'initialDelayMs', 'maxDelayMs'],
};

const show = (v: unknown): string => {
  if (typeof v === 'function') return 'a function';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

class Problems {
  readonly list: string[] = [];
  add(key: string, what: string, got?: unknown): void {
    this.list.push(arguments.length > 2 ? `${key}: ${what}, got ${show(got)}` : `${key}: ${what}`);
  }
  object(key: string, v: unknown): v is Record<string, unknown> {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return true;
    this.add(key, 'must be an object', v);
    return false;
  }
  unknownKeys(key: string, v: Record<string, unknown>, kind: string): void {
    const allowed = KNOWN_KEYS[kind] ?? [];
    for (const k of Object.keys(v)) {
      if (!allowed.includes(k)) this.add(key === '' ? k : `${key}.${k}`, `unknown key (allowed: ${allowed.join(', ')})`);
    }
  }
  string(key: string, v: unknown, pattern?: RegExp, rule?: string): v is string {
    if (typeof v !== 'string' || v.length === 0) {
      this.add(key, 'must be a non-empty string', v);
      return false;
    }
    if (pattern !== undefined && !pattern.test(v)) {
      this.add(key, `must be ${rule ?? `like ${pattern}`}`, v);
      return false;
    }
    return true;
  }
  int(key: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): v is number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.add(key, `must be an integer from ${min} to ${max}`, v);
      return false;
    }
    return true;
  }
  identifier(key: string, v: unknown, qualified = false): void {
    if (!(qualified ? isQualifiedIdentifier(v) : isIdentifier(v))) {
      this.add(key, `must be an SQL identifier${qualified ? ' (or database.table)' : ''}: ${IDENTIFIER_RULE}`, v);
    }
  }
}

function checkDatabaseUrl(p: Problems, url: unknown): void {
  // '' is "not set": allowed here (commands that need no database work), refused where a pool is opened.
  if (url === '') return;
  if (!p.string('database.url', url)) return;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    p.add('database.url', 'must be a URL like mysql://user:password@host:3306/database (value hidden)');
    return;
  }
  if (parsed.protocol !== 'mysql:' && parsed.protocol !== 'mariadb:') {
    p.add('database.url', `must start with mysql:// or mariadb://, got ${parsed.protocol}//...`);
  }
  const db = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (!isIdentifier(db)) p.add('database.url', `must name a database (${IDENTIFIER_RULE}), got ${show(db)}`);
}

function checkStage(p: Problems, key: string, s: unknown): void {
  if (!p.object(key, s)) return;
  p.unknownKeys(key, s, 'stage');
  p.string(`${key}.name`, s.name, PIPELINE_NAME, 'lowercase letters, digits, - and _, starting with a letter');
  if (typeof s.run !== 'function') p.add(`${key}.run`, 'must be a function (input, ctx) => output', s.run);
  if (s.concurrency !== undefined) p.int(`${key}.concurrency`, s.concurrency, 1, 10_000);
  if (s.ratePerSecond !== undefined && (typeof s.ratePerSecond !== 'number' || !(s.ratePerSecond >= 0.001 && s.ratePerSecond <= 1_000_000))) {
    p.add(`${key}.ratePerSecond`, 'must be a number from 0.001 to 1000000', s.ratePerSecond);
  }
  if (s.timeoutMs !== undefined) p.int(`${key}.timeoutMs`, s.timeoutMs, 1, MAX_MS);
  if (s.retry !== undefined && p.object(`${key}.retry`, s.retry)) {
    p.unknownKeys(`${key}.retry`, s.retry, 'retry');
    if (s.retry.maxAttempts !== undefined) p.int(`${key}.retry.maxAttempts`, s.retry.maxAttempts, 1, 1000);
    if (s.retry.initialDelayMs !== undefined) p.int(`${key}.retry.initialDelayMs`, s.retry.initialDelayMs, 0, MAX_MS);
    if (s.retry.maxDelayMs !== undefined) p.int(`${key}.retry.maxDelayMs`, s.retry.maxDelayMs, 0, MAX_MS);
  }
}

function checkPipeline(p: Problems, name: string, pl: unknown): PipelineConfig | undefined {
  const key = `pipelines.${name}`;
  if (!PIPELINE_NAME.test(name)) {
    p.add(key, 'pipeline names are lowercase letters, digits, - and _, starting with a letter, at most 64');
  }
  if (!p.object(key, pl)) return undefined;
  p.unknownKeys(key, pl, 'pipeline');
  const topic = pl.topic ?? `sluice.${name}`;
  p.string(`${key}.topic`, topic, TOPIC_NAME, 'a Kafka topic name: letters, digits, . _ and -, at most 249');
  const partitions = pl.partitions ?? pipelineDefaults.partitions;
  p.int(`${key}.partitions`, partitions, 1, 10_000);
  if (p.object(`${key}.source`, pl.source)) {
    const src = pl.source;
    p.unknownKeys(`${key}.source`, src, 'source');
    p.identifier(`${key}.source.table`, src.table, true);
    p.identifier(`${key}.source.key`, src.key);
    if (!Array.isArray(src.columns)) {
      p.add(`${key}.source.columns`, 'must be an array of column names', src.columns);
    } else {
      src.columns.forEach((c, i) => p.identifier(`${key}.source.columns[${i}]`, c));
    }
    if (src.payload !== undefined && typeof src.payload !== 'function') {
      p.add(`${key}.source.payload`, 'must be a function (row) => payload', src.payload);
    }
    if (src.where !== undefined && (typeof src.where !== 'string' || src.where.trim() === '' || src.where.includes(';'))) {
      p.add(`${key}.source.where`, 'must be an SQL condition (no semicolon)', src.where);
    }
  }
  let results: unknown = pl.results;
  if (results !== undefined && p.object(`${key}.results`, results)) {
    const r = results;
    p.unknownKeys(`${key}.results`, r, 'results');
    p.identifier(`${key}.results.table`, r.table, true);
    p.identifier(`${key}.results.key`, r.key);
    if (!Array.isArray(r.columns) || r.columns.length === 0) p.add(`${key}.results.columns`, 'must be a non-empty array of column names', r.columns);
    else r.columns.forEach((c, i) => p.identifier(`${key}.results.columns[${i}]`, c));
    if (typeof r.row !== 'function') p.add(`${key}.results.row`, 'must be a function (output, task) => ({ column: value })', r.row);
    const onConflict = r.onConflict ?? 'keep';
    if (onConflict !== 'keep' && onConflict !== 'update') p.add(`${key}.results.onConflict`, "must be 'keep' or 'update'", r.onConflict);
    results = { ...r, onConflict };
  }
  const stages = pl.stages ?? [];
  if (!Array.isArray(stages)) {
    p.add(`${key}.stages`, 'must be an array of stages', stages);
  } else {
    const seen = new Set<unknown>();
    stages.forEach((s: unknown, i) => {
      checkStage(p, `${key}.stages[${i}]`, s);
      const sname = (s as { name?: unknown } | null)?.name;
      if (seen.has(sname)) p.add(`${key}.stages[${i}].name`, 'duplicates an earlier stage', sname);
      seen.add(sname);
    });
  }
  const resolved = { ...(pl as unknown as PipelineConfig), topic: topic as string, partitions: partitions as number, stages: stages as StageConfig[] };
  if (results !== undefined) resolved.results = results as PipelineConfig['results'] & object;
  return resolved;
}

/** Checks a merged configuration; returns it with pipeline defaults filled, or throws a ConfigError. */
export function validateConfig(input: unknown, source?: string): SluiceConfig {
  const p = new Problems();
  if (!p.object('(config)', input)) throw new ConfigError(p.list, source);
  p.unknownKeys('', input, '');
  const { database, kafka, log, producer, fetcher, worker, spool, metrics, pipelines } = input;

  if (p.object('database', database)) {
    p.unknownKeys('database', database, 'database');
    checkDatabaseUrl(p, database.url);
    p.int('database.poolSize', database.poolSize, 1, 1000);
    p.int('database.connectTimeoutMs', database.connectTimeoutMs, 100, 600_000);
  }
  if (p.object('kafka', kafka)) {
    p.unknownKeys('kafka', kafka, 'kafka');
    if (!Array.isArray(kafka.brokers) || kafka.brokers.length === 0) {
      p.add('kafka.brokers', 'must be a non-empty list of host:port', kafka.brokers);
    } else {
      kafka.brokers.forEach((b, i) => p.string(`kafka.brokers[${i}]`, b, BROKER, 'host:port'));
    }
    p.string('kafka.clientId', kafka.clientId);
    if (typeof kafka.ssl !== 'boolean' && !(kafka.ssl !== null && typeof kafka.ssl === 'object')) {
      p.add('kafka.ssl', 'must be true, false or TLS options { ca, cert, key, rejectUnauthorized }', kafka.ssl);
    }
    if (kafka.sasl !== undefined && p.object('kafka.sasl', kafka.sasl)) {
      p.unknownKeys('kafka.sasl', kafka.sasl, 'kafka.sasl');
      if (!SASL_MECHANISMS.includes(kafka.sasl.mechanism as string)) {
        p.add('kafka.sasl.mechanism', `must be one of ${SASL_MECHANISMS.join(', ')}`, kafka.sasl.mechanism);
      }
      p.string('kafka.sasl.username', kafka.sasl.username);
      if (typeof kafka.sasl.password !== 'string') p.add('kafka.sasl.password', 'must be a string (value hidden)');
    }
    p.int('kafka.connectionTimeoutMs', kafka.connectionTimeoutMs, 100, 600_000);
    p.int('kafka.requestTimeoutMs', kafka.requestTimeoutMs, 100, 600_000);
    p.int('kafka.retries', kafka.retries, 0, 100);
  }
  if (p.object('producer', producer)) {
    p.unknownKeys('producer', producer, 'producer');
    p.int('producer.batchBytes', producer.batchBytes, 1024, 64 * 1024 * 1024);
    p.int('producer.flushMs', producer.flushMs, 1, 600_000);
    p.int('producer.pageSize', producer.pageSize, 1, 1_000_000);
    if (producer.compression !== 'none' && producer.compression !== 'gzip') {
      p.add('producer.compression', "must be 'none' or 'gzip'", producer.compression);
    }
    p.int('producer.staleAfterMs', producer.staleAfterMs, 0, MAX_MS);
    p.int('producer.progressIntervalMs', producer.progressIntervalMs, 100, MAX_MS);
  }
  if (p.object('log', log)) {
    p.unknownKeys('log', log, 'log');
    if (!LOG_LEVELS.includes(log.level as string)) {
      p.add('log.level', `must be one of ${LOG_LEVELS.join(', ')}`, log.level);
    }
    if (log.pretty !== 'auto' && typeof log.pretty !== 'boolean') p.add('log.pretty', "must be true, false or 'auto'", log.pretty);
  }
  if (p.object('spool', spool)) {
    p.unknownKeys('spool', spool, 'spool');
    p.string('spool.dir', spool.dir);
    p.int('spool.maxSegmentItems', spool.maxSegmentItems, 1, 1_000_000);
    p.int('spool.maxItemBytes', spool.maxItemBytes, 1024, 256 * 1024 * 1024);
    const hi = p.int('spool.highWaterItems', spool.highWaterItems, 1, 1_000_000_000);
    const lo = p.int('spool.lowWaterItems', spool.lowWaterItems, 0, 1_000_000_000);
    if (hi && lo && (spool.lowWaterItems as number) > (spool.highWaterItems as number)) p.add('spool.lowWaterItems', 'must not be above spool.highWaterItems', spool.lowWaterItems);
    const hb = p.int('spool.highWaterBytes', spool.highWaterBytes, 1024, Number.MAX_SAFE_INTEGER);
    const lb = p.int('spool.lowWaterBytes', spool.lowWaterBytes, 0);
    if (hb && lb && (spool.lowWaterBytes as number) > (spool.highWaterBytes as number)) p.add('spool.lowWaterBytes', 'must not be above spool.highWaterBytes', spool.lowWaterBytes);
    p.int('spool.leaseMs', spool.leaseMs, 100, MAX_MS);
  }
  if (p.object('worker', worker)) {
    p.unknownKeys('worker', worker, 'worker');
    p.int('worker.maxInFlight', worker.maxInFlight, 1, 100_000);
    p.int('worker.shutdownGraceMs', worker.shutdownGraceMs, 0, 3_600_000);
    p.int('worker.pollMs', worker.pollMs, 1, 60_000);
    p.int('worker.ledgerBatch', worker.ledgerBatch, 1, 100_000);
    p.int('worker.ledgerFlushMs', worker.ledgerFlushMs, 0, 60_000);
    p.int('worker.maxOutputBytes', worker.maxOutputBytes, 1024, 1024 * 1024 * 1024);
  }
  if (p.object('fetcher', fetcher)) {
    p.unknownKeys('fetcher', fetcher, 'fetcher');
    if (fetcher.groupId !== undefined) p.string('fetcher.groupId', fetcher.groupId);
    p.int('fetcher.maxBytesPerPartition', fetcher.maxBytesPerPartition, 1024, MAX_INT32);
    p.int('fetcher.maxBytes', fetcher.maxBytes, 1024, MAX_INT32);
    p.int('fetcher.sessionTimeoutMs', fetcher.sessionTimeoutMs, 6000, 600_000);
    p.int('fetcher.statsIntervalMs', fetcher.statsIntervalMs, 100, MAX_MS);
    p.int('fetcher.maxRestarts', fetcher.maxRestarts, 0, 1000);
    p.int('fetcher.restartBackoffMs', fetcher.restartBackoffMs, 10, 600_000);
  }
  if (p.object('metrics', metrics)) {
    p.unknownKeys('metrics', metrics, 'metrics');
    p.int('metrics.port', metrics.port, 0, 65535);
    p.string('metrics.host', metrics.host);
  }
  const resolved: Record<string, PipelineConfig> = {};
  if (p.object('pipelines', pipelines)) {
    for (const [name, pl] of Object.entries(pipelines)) {
      const r = checkPipeline(p, name, pl);
      if (r !== undefined) resolved[name] = r;
    }
  }
  if (p.list.length > 0) throw new ConfigError(p.list, source);
  return { ...(input as unknown as SluiceConfig), pipelines: resolved };
}

