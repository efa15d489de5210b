// The settings of the schema as a flat list (path, meta, default), read off schema.ts: what the
// environment and flag layers, `--help` and the configuration table (docs/configuration.md) are made from.

import { z } from 'zod';
import { configSchema, settingMeta, type SettingMeta } from './schema.js';

export interface Setting extends SettingMeta {
  /** Dotted path, e.g. `producer.flushMs`. */
  path: string;
  schema: z.ZodType;
  /** The value when nothing sets it; undefined when it has none. */
  defaultValue: unknown;
}

function unwrap(s: z.ZodType): z.ZodType {
  let cur = s;
  while (cur instanceof z.ZodOptional || cur instanceof z.ZodDefault || cur instanceof z.ZodPrefault)
    cur = cur.unwrap() as z.ZodType;
  return cur;
}

function walk(shape: z.ZodRawShape, prefix: string, out: Setting[]): void {
  for (const [key, child] of Object.entries(shape)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    const meta = settingMeta.get(child as z.ZodType);
    if (meta !== undefined) {
      const d = (child as z.ZodType).safeParse(undefined);
      out.push({ ...meta, path, schema: child as z.ZodType, defaultValue: d.success ? d.data : undefined });
      continue;
    }
    const inner = unwrap(child as z.ZodType);
    if (inner instanceof z.ZodObject) walk(inner.shape, path, out);
  }
}

let cached: Setting[] | null = null;

/** Every setting the schema declares, in schema order (pipelines are not settings: they come from the file). */
export function settings(): readonly Setting[] {
  if (cached === null) {
    cached = [];
    walk(configSchema.shape, '', cached);
  }
  return cached;
}

/** The settings a command accepts as flags (global ones, and those naming the command). */
export function flagSettings(command?: string): Setting[] {
  return settings().filter(
    (s) =>
      s.flag !== undefined && (s.commands === undefined || (command !== undefined && s.commands.includes(command))),
  );
}

/** Paths whose values are never echoed in messages. */
export function secretPaths(): string[] {
  return settings()
    .filter((s) => s.secret === true)
    .map((s) => s.path);
}
