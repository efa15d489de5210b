// Builds the configuration from its layers: defaults < config file < environment < CLI flags.
// Nothing here reads process.* directly: cli.ts passes the environment, the working directory and flags.

import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CONFIG_FILES, defaults, mergeLayers, type SluiceConfig } from './config.js';
import { validateConfig } from './config-validate.js';
import { ConfigError } from './errors.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** Settings that CLI flags may override (each command declares which flags it accepts). */
export interface ConfigFlags {
  config?: string;
  databaseUrl?: string;
  brokers?: string;
  clientId?: string;
  logLevel?: string;
  spoolDir?: string;
  metricsPort?: string;
}

export interface LoadedConfig {
  config: SluiceConfig;
  /** Absolute path of the config file used, or null when none was found at the default path. */
  file: string | null;
}

type EnvParser = (raw: string, name: string) => unknown;

const text: EnvParser = (raw) => raw;
const list: EnvParser = (raw) => raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
const int: EnvParser = (raw, name) => {
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError([`${name}: must be a whole number, got ${JSON.stringify(raw)}`], name.startsWith('--') ? 'flags' : 'environment');
  return Number(raw);
};
const bool: EnvParser = (raw, name) => {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  throw new ConfigError([`${name}: must be true or false, got ${JSON.stringify(raw)}`], 'environment');
};

/** Environment variable -> config path. Documented in the README's configuration table. */
export const ENV_VARS: ReadonlyArray<readonly [string, string, EnvParser]> = [
  ['DATABASE_URL', 'database.url', text],
  ['SLUICE_DB_POOL_SIZE', 'database.poolSize', int],
  ['SLUICE_DB_CONNECT_TIMEOUT_MS', 'database.connectTimeoutMs', int],
  ['SLUICE_KAFKA_BROKERS', 'kafka.brokers', list],
  ['SLUICE_KAFKA_CLIENT_ID', 'kafka.clientId', text],
  ['SLUICE_KAFKA_SSL', 'kafka.ssl', bool],
  ['SLUICE_KAFKA_SASL_MECHANISM', 'kafka.sasl.mechanism', text],
  ['SLUICE_KAFKA_SASL_USERNAME', 'kafka.sasl.username', text],
  ['SLUICE_KAFKA_SASL_PASSWORD', 'kafka.sasl.password', text],
  ['SLUICE_KAFKA_CONNECTION_TIMEOUT_MS', 'kafka.connectionTimeoutMs', int],
  ['SLUICE_KAFKA_RETRIES', 'kafka.retries', int],
  ['SLUICE_BATCH_BYTES', 'producer.batchBytes', int],
  ['SLUICE_FLUSH_MS', 'producer.flushMs', int],
  ['SLUICE_PAGE_SIZE', 'producer.pageSize', int],
  ['SLUICE_COMPRESSION', 'producer.compression', text],
  ['SLUICE_LOG_LEVEL', 'log.level', text],
  ['SLUICE_LOG_PRETTY', 'log.pretty', bool],
  ['SLUICE_SPOOL_DIR', 'spool.dir', text],
  ['SLUICE_SPOOL_HIGH_WATER_ITEMS', 'spool.highWaterItems', int],
  ['SLUICE_SPOOL_LOW_WATER_ITEMS', 'spool.lowWaterItems', int],
  ['SLUICE_SPOOL_HIGH_WATER_BYTES', 'spool.highWaterBytes', int],
  ['SLUICE_SPOOL_LOW_WATER_BYTES', 'spool.lowWaterBytes', int],
  ['SLUICE_FETCH_GROUP_ID', 'fetcher.groupId', text],
  ['SLUICE_METRICS_PORT', 'metrics.port', int],
  ['SLUICE_METRICS_HOST', 'metrics.host', text],
];

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = target;
  for (const k of keys.slice(0, -1)) {
    node[k] ??= {};
    node = node[k] as Record<string, unknown>;
  }
  node[keys[keys.length - 1] as string] = value;
}

export function envLayer(env: Env): Record<string, unknown> {
  const layer: Record<string, unknown> = {};
  for (const [name, path, parse] of ENV_VARS) {
    const raw = env[name];
    if (raw !== undefined && raw !== '') setPath(layer, path, parse(raw, name));
  }
  return layer;
}

export function flagsLayer(flags: ConfigFlags): Record<string, unknown> {
  const layer: Record<string, unknown> = {};
  if (flags.databaseUrl !== undefined) setPath(layer, 'database.url', flags.databaseUrl);
  if (flags.brokers !== undefined) setPath(layer, 'kafka.brokers', list(flags.brokers, '--brokers'));
  if (flags.clientId !== undefined) setPath(layer, 'kafka.clientId', flags.clientId);
  if (flags.logLevel !== undefined) setPath(layer, 'log.level', flags.logLevel);
  if (flags.spoolDir !== undefined) setPath(layer, 'spool.dir', flags.spoolDir);
  if (flags.metricsPort !== undefined) setPath(layer, 'metrics.port', int(flags.metricsPort, '--metrics-port'));
  return layer;
}

/**
 * Imports a config file. A TypeScript file is imported as it is when a TypeScript loader is already active
 * (`tsx src/cli.ts` in sluice's repository); otherwise through tsx's in-process API, so the installed bin
 * stays one plain `node` process.
 */
async function importModule(file: string): Promise<{ default?: unknown }> {
  const url = pathToFileURL(file).href;
  try {
    return (await import(url)) as { default?: unknown };
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
    const { tsImport } = await import('tsx/esm/api');
    return (await tsImport(url, import.meta.url)) as { default?: unknown };
  }
}

async function importConfigFile(file: string): Promise<unknown> {
  let mod: { default?: unknown };
  try {
    mod = await importModule(file);
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new ConfigError([`cannot load ${file}: ${msg}`]);
  }
  const value = mod.default;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError([`${file} must \`export default defineConfig({ ... })\``]);
  }
  return value;
}

/** sluice.config.{ts,mts,js,mjs} in `dir` or the nearest parent that has one (as vite and eslint look). */
export function findConfigFile(dir: string): string | null {
  for (let d = resolve(dir); ; d = dirname(d)) {
    for (const name of CONFIG_FILES) {
      const candidate = join(d, name);
      if (existsSync(candidate)) return candidate;
    }
    if (dirname(d) === d) return null;
  }
}

/**
 * Loads and validates the configuration. An explicit --config / SLUICE_CONFIG that does not exist is an
 * error; without one, the nearest sluice.config.* is used, or none (settings from env and flags only).
 * Whether the database URL was given anywhere is kept: sluice never picks a database by itself.
 */
export async function loadConfig(opts: { cwd: string; env: Env; flags?: ConfigFlags }): Promise<LoadedConfig> {
  const flags = opts.flags ?? {};
  const explicit = flags.config ?? (opts.env.SLUICE_CONFIG || undefined);
  let file: string | null = null;
  let fileLayer: unknown = {};
  if (explicit !== undefined) {
    const candidate = resolve(opts.cwd, explicit);
    if (!existsSync(candidate)) {
      const shown = isAbsolute(explicit) ? explicit : `${explicit} (in ${opts.cwd})`;
      throw new ConfigError([`config file not found: ${shown}`]);
    }
    file = candidate;
  } else {
    file = findConfigFile(opts.cwd);
  }
  if (file !== null) fileLayer = await importConfigFile(file);
  const merged = [fileLayer, envLayer(opts.env), flagsLayer(flags)].reduce<unknown>(
    (acc, layer) => mergeLayers(acc, layer),
    structuredClone(defaults),
  );
  return { config: validateConfig(merged), file };
}
