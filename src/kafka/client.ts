// The kafkajs client for producer, fetcher and status: built from validated config, with kafkajs's own log
// lines routed into the component's pino logger, and a preflight that fails in seconds with one clear line.

import { Kafka, logLevel as KafkaLogLevel, type KafkaConfig as KafkaJsConfig, type SASLOptions } from 'kafkajs';
import type { KafkaConfig } from '../core/config.js';
import { KafkaError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { run } from '../core/hints.js';

function saslOptions(cfg: KafkaConfig): SASLOptions | undefined {
  if (cfg.sasl === undefined) return undefined;
  const { mechanism, username, password } = cfg.sasl;
  return { mechanism, username, password } as SASLOptions;
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

export function createKafka(cfg: KafkaConfig, log: Logger, overrides: Partial<KafkaJsConfig> = {}): Kafka {
  return new Kafka({
    clientId: cfg.clientId,
    brokers: cfg.brokers,
    ssl: cfg.ssl,
    sasl: saslOptions(cfg),
    connectionTimeout: cfg.connectionTimeoutMs,
    requestTimeout: cfg.requestTimeoutMs,
    logLevel: KafkaLogLevel.INFO,
    logCreator: logCreator(log),
    ...overrides,
  });
}

function describeKafkaFailure(err: unknown, brokers: string): KafkaError {
  const name = err instanceof Error ? err.name : '';
  const msg = err instanceof Error ? err.message : String(err);
  if (name === 'KafkaJSSASLAuthenticationError' || /SASL/i.test(msg)) {
    return new KafkaError('KAFKA_AUTH', `Kafka at ${brokers} rejected the SASL credentials`, {
      hint: 'check SLUICE_KAFKA_SASL_USERNAME and SLUICE_KAFKA_SASL_PASSWORD, or kafka.sasl in sluice.config.ts',
      cause: err,
    });
  }
  return new KafkaError('KAFKA_UNREACHABLE', `Kafka unreachable at ${brokers}`, {
    retriable: true,
    hint: `start it with: ${run('services')}, or check SLUICE_KAFKA_BROKERS`,
    cause: err,
  });
}

/**
 * Proves a broker answers a metadata request within `deadlineMs`. kafkajs's own retries would keep a
 * user waiting for half a minute before saying anything, so this check does not retry.
 */
export async function checkKafka(cfg: KafkaConfig, log: Logger, deadlineMs = 4000): Promise<{ brokers: number; clusterId: string }> {
  const brokers = cfg.brokers.join(',');
  const kafka = createKafka(cfg, log.child({ component: 'kafka-check' }), {
    retry: { retries: 0 },
    connectionTimeout: Math.min(cfg.connectionTimeoutMs, deadlineMs),
    requestTimeout: deadlineMs,
    logLevel: KafkaLogLevel.NOTHING,
  });
  const admin = kafka.admin();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${deadlineMs} ms`)), deadlineMs);
  });
  try {
    const cluster = await Promise.race([
      (async () => {
        await admin.connect();
        return admin.describeCluster();
      })(),
      deadline,
    ]);
    return { brokers: cluster.brokers.length, clusterId: cluster.clusterId };
  } catch (err) {
    throw describeKafkaFailure(err, brokers);
  } finally {
    clearTimeout(timer);
    await admin.disconnect().catch(() => {});
  }
}
