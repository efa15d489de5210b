// Validates a merged configuration once, at start-up, against the one schema (schema.ts), and fills
// defaults. Every problem is reported with the key it belongs to (`pipelines.demo.source.table: ...`), all
// at once, so a user fixes a file in one pass instead of one error per run. Secrets are never echoed.

import type { z } from 'zod';
import { configSchema, PIPELINE_NAME, PIPELINE_NAME_RULE } from './schema.js';
import { secretPaths } from './settings.js';
import { resolveStage, type PipelineConfig, type SluiceConfig } from './config.js';
import { leaseFits, leaseForTimeout } from './lease-time.js';
import { ConfigError } from '../core/errors.js';

export { MAX_MS } from './schema.js';

const show = (v: unknown): string => {
  if (typeof v === 'function') return 'a function';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

/** `['pipelines', 'docs', 'stages', 1, 'run']` -> `pipelines.docs.stages[1].run` */
export function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out;
}

function problemsOf(issue: z.core.$ZodIssue, secrets: readonly string[]): string[] {
  const key = pathText(issue.path);
  if (issue.code === 'unrecognized_keys')
    return issue.keys.map((k) => `${key === '' ? k : `${key}.${k}`}: ${issue.message}`);
  const secret = secrets.some((s) => key === s || key.startsWith(`${s}.`) || key.startsWith(`${s}[`));
  const shown = secret || !('input' in issue) || issue.message.includes(', got ') ? '' : `, got ${show(issue.input)}`;
  return [`${key === '' ? '(config)' : key}: ${issue.message}${shown}`];
}

/** What one field's schema cannot say: names, duplicates, and marks that must be in order. */
function crossChecks(input: Record<string, unknown>, out: SluiceConfig | null): string[] {
  const problems: string[] = [];
  const pipelines = input.pipelines;
  if (pipelines !== null && typeof pipelines === 'object') {
    for (const [name, pl] of Object.entries(pipelines)) {
      if (!PIPELINE_NAME.test(name)) problems.push(`pipelines.${name}: pipeline names are ${PIPELINE_NAME_RULE}`);
      const stages = (pl as { stages?: unknown } | null)?.stages;
      if (!Array.isArray(stages)) continue;
      const seen = new Set<unknown>();
      stages.forEach((s: unknown, i) => {
        const sname = (s as { name?: unknown } | null)?.name;
        if (seen.has(sname))
          problems.push(`pipelines.${name}.stages[${i}].name: duplicates an earlier stage, got ${show(sname)}`);
        seen.add(sname);
      });
    }
  }
  if (out !== null) {
    problems.push(...resourceChecks(out));
    const s = out.spool;
    if (s.lowWaterItems > s.highWaterItems)
      problems.push(`spool.lowWaterItems: must not be above spool.highWaterItems, got ${s.lowWaterItems}`);
    for (const [name, pl] of Object.entries(out.pipelines)) {
      if (
        pl.minInsyncReplicas !== undefined &&
        pl.replicationFactor !== undefined &&
        pl.minInsyncReplicas > pl.replicationFactor
      ) {
        problems.push(
          `pipelines.${name}.minInsyncReplicas: must not be above ` +
            `pipelines.${name}.replicationFactor (${pl.replicationFactor}): no write ` +
            `could ever be acknowledged, got ${pl.minInsyncReplicas}`,
        );
      }
    }
    if (s.lowWaterBytes > s.highWaterBytes)
      problems.push(`spool.lowWaterBytes: must not be above spool.highWaterBytes, got ${s.lowWaterBytes}`);
  }
  return problems;
}

/** Resources must limit something, and every stage's resource must exist. */
function resourceChecks(c: SluiceConfig): string[] {
  const problems: string[] = [];
  for (const [name, r] of Object.entries(c.resources)) {
    const key = `resources.${name}`;
    if (!PIPELINE_NAME.test(name)) problems.push(`${key}: resource names are ${PIPELINE_NAME_RULE}`);
    if (r.concurrency === undefined && r.ratePerSecond === undefined)
      problems.push(`${key}: set concurrency (a number or 'auto') and/or ratePerSecond`);
    if ((r.min !== undefined || r.max !== undefined) && r.concurrency !== 'auto')
      problems.push(`${key}: min and max go with concurrency: 'auto'`);
    if (r.min !== undefined && r.max !== undefined && r.min > r.max)
      problems.push(`${key}.min: must not be above ${key}.max, got ${r.min}`);
  }
  for (const [pname, p] of Object.entries(c.pipelines)) {
    p.stages.forEach((s, i) => {
      if (s.resource !== undefined && !Object.hasOwn(c.resources, s.resource)) {
        const known = Object.keys(c.resources);
        problems.push(
          `pipelines.${pname}.stages[${i}].resource: no ` +
            `resource '${s.resource}' (` +
            `${known.length === 0 ? 'none are configured under resources' : `configured: ${known.join(', ')}`})`,
        );
        return;
      }
      const lease = s.resource === undefined ? undefined : c.resources[s.resource]!.leaseMs;
      const timeout = resolveStage(s).timeoutMs;
      if (lease !== undefined && !leaseFits(lease, timeout)) {
        problems.push(
          `resources.${s.resource}.leaseMs: ${lease} ms leaves no room for ` +
            `pipelines.${pname}.stages[${i}] (timeoutMs ${timeout}): a call must end ` +
            `before the lease does; set it to at least ${leaseForTimeout(timeout)} ` +
            `or leave it out`,
        );
      }
    });
  }
  return problems;
}

/** Checks a merged configuration; returns it with every default filled, or throws a ConfigError. */
export function validateConfig(input: unknown, source?: string): SluiceConfig {
  if (input === null || typeof input !== 'object' || Array.isArray(input))
    throw new ConfigError([`(config): must be an object, got ${show(input)}`], source);
  const r = configSchema.safeParse(input, { reportInput: true });
  const secrets = secretPaths();
  const parsed = r.success ? (r.data as SluiceConfig) : null;
  const problems = [
    ...(r.success ? [] : r.error.issues.flatMap((i) => problemsOf(i, secrets))),
    ...crossChecks(input as Record<string, unknown>, parsed),
  ];
  if (problems.length > 0 || parsed === null) throw new ConfigError(problems, source);
  const pipelines: Record<string, PipelineConfig> = {};
  for (const [name, p] of Object.entries(parsed.pipelines)) {
    const groupId = parsed.fetcher.groupId ?? `sluice.${name}`;
    pipelines[name] = { ...p, name, topic: p.topic ?? `sluice.${name}`, groupId, stages: p.stages.map(resolveStage) };
  }
  return { ...parsed, pipelines };
}
