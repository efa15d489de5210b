// sluice's public API: configuration helpers, errors, and the building blocks behind the CLI.
export { defineConfig, defaults } from './config/config.js';
export type {
  DatabaseConfig,
  KafkaConfig,
  LogConfig,
  PipelineConfig,
  PipelineInput,
  ResourceConfig,
  SluiceConfig,
  SluiceConfigInput,
  SourceConfig,
  StageConfig,
} from './config/config.js';
export { loadConfig, type ConfigFlags, type Env } from './config/load.js';
export { validateConfig } from './config/validate.js';
export {
  ConfigError,
  DatabaseError,
  KafkaError,
  MigrationError,
  NonRetriableError,
  SluiceError,
  UnknownPipelineError,
  coerceError,
  isBug,
  isRetriable,
} from './core/errors.js';
export { createLogger, silentLogger, type Logger } from './core/logger.js';
export { Shutdown, type ShutdownState } from './core/shutdown.js';
export { migrate, migrationState, assertMigrated, readMigrations } from './db/migrate.js';
export { openPool } from './db/pool.js';
export { checkKafka, createKafka } from './kafka/client.js';
export { pipeline, PipelineBuilder, type StageContext, type StageOptions, type TaskInfo } from './worker/define.js';
export { startWorker, type WorkerHandle, type WorkStats } from './worker/worker.js';
export { startFetcher, type FetcherHandle, type FetchStats } from './fetcher/fetcher.js';
export { produce, type ProduceSummary } from './producer/producer.js';
export { OverloadError, isOverload } from './resources/overload.js';
export { collectStatus, isComplete, type StatusReport } from './status/collect.js';
