// Sluice's configuration types and defaults, all derived from the one schema (schema.ts). Layers
// override the defaults in this order: defaults < config file (sluice.config.ts) < environment < CLI flags.
// The merged result is validated once, at start-up (validate.ts); everything after that may trust it.

import type { z } from 'zod';
import type { configSchema, pipelineSchema, resourceSchema, stageSchema } from './schema.js';
import { configSchema as schema } from './schema.js';
import { UnknownPipelineError } from '../core/errors.js';

type Output = z.output<typeof configSchema>;

/** A stage as a config says it: limits it leaves out take the defaults below when the pipeline is resolved. */
export type StageConfig = z.output<typeof stageSchema>;
/** A stage as every component sees it: its limits filled in. */
export interface ResolvedStage extends Omit<StageConfig, 'concurrency' | 'timeoutMs' | 'retry' | 'version'> {
  /** '1' when the stage does not say. */
  version: string;
  concurrency: number;
  timeoutMs: number;
  retry: { maxAttempts: number; initialDelayMs: number; maxDelayMs: number };
}
export type ResourceConfig = z.output<typeof resourceSchema>;
/**
 * A pipeline after validation, resolved once: it knows its name, its topic (default `sluice.<name>`), its
 * fetchers' consumer group (fetcher.groupId, else `sluice.<name>`) and its stages with their defaults filled in.
 * Components take this, not (config, name).
 */
export type PipelineConfig = Omit<z.output<typeof pipelineSchema>, 'topic' | 'stages'> & {
  name: string;
  topic: string;
  groupId: string;
  stages: ResolvedStage[];
};
export type SourceConfig = PipelineConfig['source'];
export type ResultsConfig = NonNullable<PipelineConfig['results']>;
export type SluiceConfig = Omit<Output, 'pipelines'> & { pipelines: Record<string, PipelineConfig> };
export type DatabaseConfig = SluiceConfig['database'];
export type KafkaConfig = SluiceConfig['kafka'];
export type KafkaSaslConfig = NonNullable<KafkaConfig['sasl']>;
export type LogConfig = SluiceConfig['log'];
export type LogLevel = LogConfig['level'];
export type ProducerConfig = SluiceConfig['producer'];
export type SpoolConfig = SluiceConfig['spool'];
export type FetcherConfig = SluiceConfig['fetcher'];
export type WorkerConfig = SluiceConfig['worker'];
export type MetricsConfig = SluiceConfig['metrics'];

/** What a config file (or a test) provides: any subset of the settings. */
export type SluiceConfigInput = z.input<typeof configSchema>;
export type PipelineInput = z.input<typeof pipelineSchema>;

/** Identity function that gives sluice.config.ts its types. */
export function defineConfig(config: SluiceConfigInput): SluiceConfigInput {
  return config;
}

/** Every setting at its default (no pipelines). */
export const defaults: SluiceConfig = schema.parse({}) as SluiceConfig;

/** The version of a stage that does not say (and of every milestone written before stages had versions). */
export const DEFAULT_STAGE_VERSION = '1';

/** Limits of a stage that does not set its own. */
export const stageDefaults = {
  concurrency: 8,
  timeoutMs: 60_000,
  retry: { maxAttempts: 3, initialDelayMs: 500, maxDelayMs: 30_000 },
} as const;

/** Config file names looked for, in this order, in the working directory and then its parents. */
export const CONFIG_FILES = ['sluice.config.ts', 'sluice.config.mts', 'sluice.config.js', 'sluice.config.mjs'] as const;

/** A stage with the defaults filled in for what it leaves out (idempotent). */
export function resolveStage(s: StageConfig): ResolvedStage {
  return {
    ...s,
    version: s.version ?? DEFAULT_STAGE_VERSION,
    concurrency: s.concurrency ?? stageDefaults.concurrency,
    timeoutMs: s.timeoutMs ?? stageDefaults.timeoutMs,
    retry: { ...stageDefaults.retry, ...s.retry },
  };
}

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
