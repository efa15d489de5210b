// The fetcher's kafkajs consumer, with sluice's restart policy. kafkajs restarts a crashed consumer within a
// second; a broker that takes longer to come back would use up every restart at once. So each consecutive
// restart waits twice as long as the one before (fetcher.restartBackoffMs, up to 30 s), and a batch that
// goes through resets the count. After fetcher.maxRestarts in a row the consumer stays down.

import type { Consumer, Kafka } from 'kafkajs';
import type { PipelineConfig, SluiceConfig } from '../config/config.js';
import type { Logger } from '../core/logger.js';
import { backoffDelay, realClock, type Clock } from '../core/retry.js';
import { kafkaRetry } from '../kafka/client.js';

/**
 * kafkajs commits the offsets resolved so far at most this often (and when the fetcher stops or loses partitions).
 */
export const COMMIT_INTERVAL_MS = 1000;

export class RestartCounter {
  /** Crashes since the last batch that went through. */
  consecutive = 0;
  total = 0;
}

export interface RestartPolicy {
  maxRestarts: number;
  restartBackoffMs: number;
}

/** Whether to restart after another crash, and after how long (kafkajs's restartOnFailure). */
export async function onCrash(
  counter: RestartCounter,
  policy: RestartPolicy,
  log: Logger,
  err: unknown,
  clock: Clock = realClock,
): Promise<boolean> {
  counter.consecutive++;
  counter.total++;
  const again = counter.consecutive <= policy.maxRestarts;
  const delayMs = backoffDelay(
    { initialDelayMs: policy.restartBackoffMs, maxDelayMs: 30_000, jitter: 'none' },
    counter.consecutive,
  );
  log.error(
    { err, restarts: counter.consecutive, restarting: again, delayMs: again ? delayMs : null },
    'consumer crashed',
  );
  if (again) await clock.sleep(delayMs);
  return again;
}

export function createConsumer(
  kafka: Kafka,
  config: SluiceConfig,
  pipeline: PipelineConfig,
  counter: RestartCounter,
  log: Logger,
): Consumer {
  const { fetcher } = config;
  return kafka.consumer({
    groupId: pipeline.groupId,
    sessionTimeout: fetcher.sessionTimeoutMs,
    heartbeatInterval: Math.min(3000, Math.floor(fetcher.sessionTimeoutMs / 10)),
    maxBytesPerPartition: fetcher.maxBytesPerPartition,
    maxBytes: fetcher.maxBytes,
    allowAutoTopicCreation: false,
    retry: {
      ...kafkaRetry(config.kafka, config.kafka.brokers.length),
      restartOnFailure: (err) => onCrash(counter, fetcher, log, err),
    },
  });
}
