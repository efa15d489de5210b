// Builds the configuration from its layers: defaults < config file < environment < CLI flags.
// Nothing here reads process.* directly: cli.ts passes the environment, the working directory and flags.

import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CONFIG_FILES, mergeLayers, type SluiceConfig } from './config.js';
import type { RawInput } from './schema.js';
import { settings, type Setting } from './settings.js';
import { parseDuration } from '../core/duration.js';
import { validateConfig } from './validate.js';
import { ConfigError } from '../core/errors.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** `--config`, and setting flags by name without dashes (`{ 'flush-ms': '50' }`), as given on the command line. */
export type ConfigFlags = { config?: string } & Record<string, string | undefined>;

export interface LoadedConfig {
  config: SluiceConfig;
  /** Absolute path of the config file used, or null when none was found at the default path. */
  file: string | null;
}

type Parser = (raw: string) => unknown;

const PARSERS: Record<RawInput, { parse: Parser; rule: string }> = {
  text: { parse: (raw) => raw, rule: '' },
  list: {
    parse: (raw) =>
      raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    rule: '',
  },
  int: { parse: (raw) => (/^\d+$/.test(raw.trim()) ? Number(raw) : undefined), rule: 'must be a whole number' },
  duration: { parse: (raw) => parseDuration(raw) ?? undefined, rule: 'must be a duration like 90s, 30m or 1h' },
  bool: {
    parse: (raw) => {
      const v = raw.trim().toLowerCase();
      // 'auto' is passed on for the settings that take it (log.pretty, log.panel); the others' schema refuses it.
      return ['1', 'true', 'yes', 'on'].includes(v)
        ? true
        : ['0', 'false', 'no', 'off', ''].includes(v)
          ? false
          : v === 'auto'
            ? 'auto'
            : undefined;
    },
    rule: "must be true or false (or 'auto' where the setting takes it)",
  },
};

/**
 * One raw value for one setting, named by where it came from (`SLUICE_FLUSH_MS`, `--flush-ms`): parsed by
 * the setting's input kind, then checked by the setting's own schema, so a flag has the file's bounds.
 */
function rawValue(s: Setting, raw: string, name: string, problems: string[]): unknown {
  const p = PARSERS[s.input ?? 'text'];
  const value = p.parse(raw);
  if (value === undefined) {
    problems.push(`${name}: ${p.rule}, got ${JSON.stringify(raw)}`);
    return undefined;
  }
  const checked = s.schema.safeParse(value);
  if (!checked.success) {
    const msg = checked.error.issues[0]?.message ?? 'invalid';
    problems.push(`${name} (${s.path}): ${msg}${s.secret === true ? '' : `, got ${JSON.stringify(raw)}`}`);
    return undefined;
  }
  return value;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = target;
  for (const k of keys.slice(0, -1)) {
    node[k] ??= {};
    node = node[k] as Record<string, unknown>;
  }
  node[keys[keys.length - 1] as string] = value;
}

/** The environment's settings (documented in the configuration table (docs/configuration.md)). */
export function envLayer(env: Env): Record<string, unknown> {
  const layer: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const s of settings()) {
    const raw = s.env === undefined ? undefined : env[s.env];
    if (raw === undefined || raw === '') continue;
    const v = rawValue(s, raw, s.env!, problems);
    if (v !== undefined) setPath(layer, s.path, v);
  }
  if (problems.length > 0) throw new ConfigError(problems, 'environment');
  return layer;
}

/** The command line's settings; a flag the schema does not know is not a setting (the command's own). */
export function flagsLayer(flags: ConfigFlags): Record<string, unknown> {
  const layer: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const s of settings()) {
    const raw = s.flag === undefined ? undefined : flags[s.flag];
    if (raw === undefined) continue;
    const v = rawValue(s, raw, `--${s.flag!}`, problems);
    if (v !== undefined) setPath(layer, s.path, s.invert === true ? !v : v);
  }
  if (problems.length > 0) throw new ConfigError(problems, 'flags');
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
  // Defaults are the schema's: it fills whatever no layer set.
  const merged = [envLayer(opts.env), flagsLayer(flags)].reduce<unknown>(
    (acc, layer) => mergeLayers(acc, layer),
    fileLayer,
  );
  return { config: validateConfig(merged), file };
}
