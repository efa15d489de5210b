// The demo pipeline: ner (the flaky shared service) -> lookup (the entity table in MySQL) -> match.
// The limits are the point: ner counts against the fleet-wide resource 'ner-gpu', whose limit sluice learns
// from the service's latency and resets (or, with `nerConcurrency`, a fixed per-process limit, to watch
// what a wrong number does); lookup and match run wide.

import mysql, { type Pool, type RowDataPacket } from 'mysql2/promise';
import type { ResultsConfig, StageConfig } from '../config/config.js';
import { NerError } from './errors.js';
import { pipeline } from '../worker/define.js';

export interface DemoStageOptions {
  databaseUrl: string;
  nerUrl: string;
  /** Calls to the entity-recognition service at once, per worker process (no fleet-wide resource then). */
  nerConcurrency?: number;
  /** The fleet-wide resource the ner stage counts against. @defaultValue 'ner-gpu' unless nerConcurrency is set */
  resource?: string;
}

/** The demo's shared GPU service, limited fleet-wide by a learned limit. */
export const DEMO_RESOURCE = 'ner-gpu';
export const demoResource = { concurrency: 'auto' as const, min: 1, max: 64 };

interface Doc {
  title: string;
  body: string;
  lang: string;
}

/** The stages, and `close` for the connection pool the lookup stage opens on first use. */
export function demoPipeline(opts: DemoStageOptions): { stages: StageConfig[]; close: () => Promise<void> } {
  let pool: Pool | undefined;
  const db = (): Pool => (pool ??= mysql.createPool({ uri: opts.databaseUrl, connectionLimit: 4 }));
  const stages = pipeline<Doc>()
    .stage(
      'ner',
      async (doc, ctx) => {
        let res: Response;
        try {
          res = await fetch(opts.nerUrl, {
            method: 'POST',
            body: JSON.stringify({ text: `${doc.title}. ${doc.body}` }),
            signal: ctx.signal,
            headers: { 'content-type': 'application/json' },
          });
        } catch (err) {
          // fetch reports a reset connection as a TypeError, which sluice would treat as a bug: say what it is.
          if (ctx.signal.aborted) throw err;
          throw new NerError('NER_UNAVAILABLE', `entity recognition call failed: ${(err as Error).message}`, {
            retriable: true,
            cause: err,
          });
        }
        if (!res.ok)
          throw new NerError('NER_HTTP', `entity recognition answered ${res.status}`, { retriable: res.status >= 500 });
        return ((await res.json()) as { entities: string[] }).entities;
      },
      opts.nerConcurrency !== undefined
        ? {
            concurrency: opts.nerConcurrency,
            timeoutMs: 5000,
            retry: { maxAttempts: 8, initialDelayMs: 50, maxDelayMs: 2000 },
          }
        : {
            resource: opts.resource ?? DEMO_RESOURCE,
            concurrency: 64,
            timeoutMs: 5000,
            retry: { maxAttempts: 8, initialDelayMs: 50, maxDelayMs: 2000 },
          },
    )
    .stage(
      'lookup',
      async (names) => {
        if (names.length === 0) return [];
        const [rows] = await db().query<RowDataPacket[]>(
          'SELECT id, name, kind FROM sluice_demo_entities WHERE name IN (?)',
          [names],
        );
        return rows.map((r) => ({ id: Number(r.id), name: String(r.name), kind: String(r.kind) }));
      },
      { concurrency: 16, timeoutMs: 5000 },
    )
    .stage(
      'match',
      (known, ctx) => {
        const found = ctx.outputs.ner;
        const matched = new Set(known.map((k) => k.name));
        return {
          entities: known,
          unmatched: found.filter((n) => !matched.has(n)),
          score: found.length === 0 ? 0 : known.length / found.length,
        };
      },
      { concurrency: 32 },
    )
    .build();
  return { stages, close: async () => void (await pool?.end()) };
}

interface Matched {
  entities: Array<{ id: number; name: string; kind: string }>;
  unmatched: string[];
}

/** The demo's result table, shaped like a user's `doc_ent_map`: the names found, and the ids they mapped to. */
export const demoResults: ResultsConfig = {
  table: 'sluice_demo_doc_ent_map',
  key: 'doc_id',
  columns: ['ent_list_str', 'mapped_list_str'],
  row: (o: Matched) => ({
    ent_list_str: [...o.entities.map((e) => e.name), ...o.unmatched].join(','),
    mapped_list_str: o.entities.map((e) => e.id).join(','),
  }),
  onConflict: 'keep',
  mergeKeys: false,
};

export function demoStages(opts: DemoStageOptions): StageConfig[] {
  return demoPipeline(opts).stages;
}
