// The kafkajs client for producer, fetcher and status: built from validated config, with kafkajs's own log
// lines routed into the component's pino logger, and a preflight that fails in seconds with one clear line.

import { Kafka, logLevel as KafkaLogLevel, type KafkaConfig as KafkaJsConfig, type SASLOptions } from 'kafkajs';
import type { KafkaConfig } from '../config/config.js';
import { KafkaError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { run } from '../core/hints.js';
import { sleep } from '../core/sleep.js';
import { withRetries } from '../core/retry.js';
import { isRetriable } from '../core/errors.js';

function saslOptions(cfg: KafkaConfig): SASLOptions | undefined {
  if (cfg.sasl === undefined) return undefined;
  const { mechanism, username, password } = cfg.sasl;
  return { mechanism, username, password };
}

/** Known kafkajs lines that are expected here: sluice bounds the idempotent producer's retries on purpose. */
const EXPECTED = /^Limiting retries for the idempotent producer/;

/**
 * kafkajs INFO is chatty (every group join): it lands at debug. A failed response on one connection is
 * logged by kafkajs as ERROR even when the request is retried and succeeds; the operation's own outcome
 * is what sluice reports, so those land at warn.
 */
function logCreator(log: Logger): KafkaJsConfig['logCreator'] {
  return () =>
    ({ namespace, level, log: entry }) => {
      const { message, timestamp: _t, logger: _l, ...fields } = entry;
      const f = { kafkajs: namespace, ...fields };
      if (EXPECTED.test(message)) log.debug(f, message);
      else if (level === KafkaLogLevel.ERROR && namespace === 'Connection') log.warn(f, message);
      else if (level === KafkaLogLevel.ERROR) log.error(f, message);
      else if (level === KafkaLogLevel.WARN) log.warn(f, message);
      else if (level === KafkaLogLevel.INFO) log.debug(f, message);
      else log.trace(f, message);
    };
}

/**
 * kafkajs's retry options from config: every client retries with the same backoff (kafka.retryInitialMs
 * doubling up to kafka.retryMaxMs, kafka.retries times). With the defaults a request is retried for ~40 s,
 * longer than a KRaft cluster takes to fence a dead broker (broker.session.timeout.ms, 9 s) and move its
 * partitions. Each retry of a connection also moves to the next seed broker, so `minRetries` is at least the
 * number of seeds for clients that must get past dead ones.
 */
export function kafkaRetry(
  cfg: KafkaConfig,
  minRetries = 0,
): { retries: number; initialRetryTime: number; maxRetryTime: number } {
  return {
    retries: Math.max(minRetries, cfg.retries),
    initialRetryTime: cfg.retryInitialMs,
    maxRetryTime: cfg.retryMaxMs,
  };
}

/** Retries for a quick reader (status, the dashboard's lag): one try per seed broker, short pauses. */
export function quickRetry(cfg: KafkaConfig): { retries: number; initialRetryTime: number; maxRetryTime: number } {
  return { retries: cfg.brokers.length, initialRetryTime: 100, maxRetryTime: 500 };
}

export function createKafka(cfg: KafkaConfig, log: Logger, overrides: Partial<KafkaJsConfig> = {}): Kafka {
  return new Kafka({
    clientId: cfg.clientId,
    brokers: cfg.brokers,
    ssl: cfg.ssl,
    sasl: saslOptions(cfg),
    connectionTimeout: cfg.connectionTimeoutMs,
    requestTimeout: cfg.requestTimeoutMs,
    retry: kafkaRetry(cfg, cfg.brokers.length),
    logLevel: KafkaLogLevel.INFO,
    logCreator: logCreator(log),
    ...overrides,
  });
}

function isAuthFailure(err: unknown): boolean {
  const name = err instanceof Error ? err.name : '';
  const msg = err instanceof Error ? err.message : String(err);
  return name === 'KafkaJSSASLAuthenticationError' || /SASL/i.test(msg);
}

function describeKafkaFailure(err: unknown, brokers: string, seeds: readonly SeedAnswer[]): KafkaError {
  if (isAuthFailure(err)) {
    return new KafkaError('KAFKA_AUTH', `Kafka at ${brokers} rejected the SASL credentials`, {
      hint: 'check SLUICE_KAFKA_SASL_USERNAME and SLUICE_KAFKA_SASL_PASSWORD, or kafka.sasl in sluice.config.ts',
      cause: err,
    });
  }
  // With several seeds, each one's answer: which are down, which are refused, which are slow.
  const why =
    seeds.length < 2
      ? ''
      : ` (no seed broker answered: ${seeds.map((s) => `${s.seed}: ${s.error ?? 'no answer'}`).join('; ')})`;
  return new KafkaError('KAFKA_UNREACHABLE', `Kafka unreachable at ${brokers}${why}`, {
    retriable: true,
    hint: `start it with: ${run('services')}, or check SLUICE_KAFKA_BROKERS`,
    cause: err,
  });
}

/** What one seed broker said to a metadata request. */
export interface SeedAnswer {
  seed: string;
  ok: boolean;
  /** Why it did not answer (ok false), or undefined while it has not answered yet. */
  error?: string;
}

export interface KafkaCheck {
  /** Brokers the cluster's metadata lists (live ones: KRaft drops a fenced broker). */
  brokers: number;
  clusterId: string;
  live: Array<{ nodeId: number; host: string; port: number }>;
  seeds: SeedAnswer[];
}

async function askSeed(cfg: KafkaConfig, seed: string, timeoutMs: number): Promise<Omit<KafkaCheck, 'seeds'>> {
  const kafka = new Kafka({
    clientId: cfg.clientId,
    brokers: [seed],
    ssl: cfg.ssl,
    sasl: saslOptions(cfg),
    retry: { retries: 0 },
    connectionTimeout: Math.min(cfg.connectionTimeoutMs, timeoutMs),
    requestTimeout: timeoutMs,
    logLevel: KafkaLogLevel.NOTHING,
  });
  const admin = kafka.admin();
  const timer = new AbortController();
  const expired = sleep(timeoutMs, timer.signal).then(
    () => Promise.reject(new Error(`no answer within ${timeoutMs} ms`)),
    () => new Promise<never>(() => {}),
  );
  try {
    const cluster = await Promise.race([admin.connect().then(() => admin.describeCluster()), expired]);
    return {
      brokers: cluster.brokers.length,
      clusterId: cluster.clusterId,
      live: cluster.brokers.map(({ nodeId, host, port }) => ({ nodeId, host, port })),
    };
  } finally {
    timer.abort();
    await admin.disconnect().catch(() => {});
  }
}

/**
 * Proves the cluster answers a metadata request within `deadlineMs`: every seed broker is asked at once and
 * any one that answers is enough (a dead seed is a broker down, not Kafka down). Until one answers, the
 * seeds are asked again every half second up to the deadline, so a broker that is restarting is waited for
 * briefly instead of refused. With `all`, waits for every seed's answer (doctor: which ones are down).
 */
export async function checkKafka(
  cfg: KafkaConfig,
  _log: Logger,
  deadlineMs = 4000,
  opts: { all?: boolean } = {},
): Promise<KafkaCheck> {
  const until = performance.now() + deadlineMs;
  let lastErr: unknown = new Error('no seed broker');
  for (;;) {
    const left = Math.max(100, until - performance.now());
    const seeds: SeedAnswer[] = cfg.brokers.map((seed) => ({ seed, ok: false }));
    const asks = cfg.brokers.map((seed, i) =>
      askSeed(cfg, seed, left).then(
        (r) => ((seeds[i]!.ok = true), r),
        (err: unknown) => {
          seeds[i]!.error = err instanceof Error ? err.message : String(err);
          // A refused credential outranks a dead broker: it is what the user must fix.
          if (!isAuthFailure(lastErr)) lastErr = err;
          return null;
        },
      ),
    );
    const first =
      opts.all === true
        ? await Promise.all(asks).then((rs) => rs.find((r) => r !== null) ?? null)
        : await firstAnswer(asks);
    if (first !== null) {
      // The others get a moment to answer too, so that the seeds that are down can be named.
      if (opts.all !== true) await Promise.race([Promise.allSettled(asks), sleep(200)]);
      return { ...first, seeds };
    }
    if (isAuthFailure(lastErr) || performance.now() + 500 >= until)
      throw describeKafkaFailure(lastErr, cfg.brokers.join(','), seeds);
    await sleep(500);
  }
}

/** The first non-null answer, or null once every ask has ended without one. */
function firstAnswer<T>(asks: Array<Promise<T | null>>): Promise<T | null> {
  return new Promise((resolve) => {
    let pending = asks.length;
    if (pending === 0) resolve(null);
    for (const a of asks) {
      void a.then((r) => {
        pending--;
        if (r !== null) resolve(r);
        else if (pending === 0) resolve(null);
      });
    }
  });
}

/** kafkajs's verdict on an error: its `retriable` flag; giving up after its own retries is final too. */
function kafkaJsRetriable(err: Error): boolean {
  if (isAuthFailure(err) || err.name === 'KafkaJSNumberOfRetriesExceeded') return false;
  return (err as { retriable?: unknown }).retriable !== false;
}

/**
 * A kafkajs error as sluice reports it (one line), for the places that talk to the cluster outside a send:
 * refused credentials (exit 3, not retried), a request the cluster refuses for good (a replication factor
 * above its brokers, a policy, an authorisation: exit 2, the setting to fix), and anything else an outage
 * (retriable, exit 3). Anything that is not a kafkajs error (a bug, a sluice error) passes unchanged.
 */
export function kafkaFailure(thrown: unknown, what: string, hint: string): Error {
  const err = thrown instanceof Error ? thrown : new Error(String(thrown));
  if (!err.name.startsWith('KafkaJS')) return err;
  if (isAuthFailure(err)) {
    return new KafkaError('KAFKA_AUTH', `${what}: ${err.message}`, {
      hint: 'check SLUICE_KAFKA_SASL_USERNAME and SLUICE_KAFKA_SASL_PASSWORD, or kafka.sasl in sluice.config.ts',
      cause: err,
    });
  }
  const type = (err as { type?: unknown }).type;
  if (err.name === 'KafkaJSProtocolError' && !kafkaJsRetriable(err)) {
    return new KafkaError(
      'KAFKA_REFUSED',
      `${what}: Kafka refused it: ${err.message}${typeof type === 'string' ? ` (${type})` : ''}`,
      {
        hint:
          "check the pipeline's topic settings (partitions, replicationFactor, " +
          "minInsyncReplicas) against the cluster, and the client's rights on the " +
          'topic and group',
        cause: err,
      },
    );
  }
  return new KafkaError('KAFKA_UNREACHABLE', `${what}: ${err.message}`, { retriable: true, hint, cause: err });
}

/**
 * Runs a start-up step that talks to the cluster (topic, claims) again after a failure, with the clients'
 * backoff (kafka.retries, kafka.retryInitialMs..retryMaxMs: longer than a leader change). Some kafkajs admin
 * calls (listGroups) ask every broker of the metadata once without retrying, so a dead broker not yet fenced
 * fails them; calls kafkajs retried itself until it gave up are not retried again.
 */
export function retryKafka<T>(cfg: KafkaConfig, fn: () => Promise<T>, log: Logger, what: string): Promise<T> {
  return withRetries(
    fn,
    { maxAttempts: cfg.retries + 1, initialDelayMs: cfg.retryInitialMs, maxDelayMs: cfg.retryMaxMs, jitter: 'none' },
    {
      retriable: (err) =>
        err.name.startsWith('KafkaJS') ? kafkaJsRetriable(err) : isRetriable(err) && err instanceof KafkaError,
      onRetry: (err, attempt, delayMs) => log.warn({ err, attempt, delayMs, what }, 'Kafka call failed; retrying'),
    },
  );
}
