// `sluice inspect --pipeline <name> <key>` (a composite key as one argument per part, a UUID key with or
// without dashes): everything known about one task — in the source (and the
// filter)?, done, pending, in flight or quarantined; its result, milestones, failed attempts, dispatch
// record, and what this machine's spool holds for it.

import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { getPipeline } from '../config/config.js';
import { UsageError } from '../core/errors.js';
import { keyText } from '../core/envelope.js';
import { inspectTask, type TaskRecord } from '../ledger/inspect.js';
import { assertMigrated } from '../db/migrate.js';
import { checkPipelineTables } from '../user-tables/pipeline-tables.js';
import { displayKey, typedKey } from '../user-tables/key-shape.js';
import { openPool } from '../db/pool.js';
import { spoolPaths, type SpoolPaths } from '../spool/layout.js';
import { decodeItems } from '../spool/segment.js';
import type { Command } from './command.js';

interface SpoolHit {
  folder: 'ready' | 'claimed' | 'quarantine';
  file: string;
  offset?: string;
  reason?: string;
}

/** Items of this key in this machine's spool (ready and claimed segments, quarantine entries). */
async function spoolHits(p: SpoolPaths, key: string): Promise<SpoolHit[]> {
  const hits: SpoolHit[] = [];
  for (const folder of ['ready', 'claimed'] as const) {
    for (const file of await readdir(p[folder]).catch(() => [] as string[])) {
      const items = decodeItems(await readFile(join(p[folder], file), 'utf8').catch(() => ''));
      for (const i of items) if (keyText(i.task.key) === key) hits.push({ folder, file, offset: i.offset });
    }
  }
  const b64 = Buffer.from(key).toString('base64');
  for (const file of await readdir(p.quarantine).catch(() => [] as string[])) {
    try {
      const e = JSON.parse(await readFile(join(p.quarantine, file), 'utf8')) as {
        key?: string;
        reason?: string;
        offset?: string;
      };
      if (e.key === b64) hits.push({ folder: 'quarantine', file, offset: e.offset ?? '', reason: e.reason ?? '' });
    } catch {
      // not an entry of ours
    }
  }
  return hits;
}

function render(r: TaskRecord & { display: string; spool: SpoolHit[] }, out: (l: string) => void): void {
  out(
    `key ${JSON.stringify(r.display)}: ${r.state}` +
      `${r.inTable && !r.inSource ? ' (in the table, outside source.where)' : ''}`,
  );
  if (r.result !== null) out(`  result      ${JSON.stringify(r.result)}`);
  if (r.bookkeeping !== null)
    out(
      `  ` +
        `finished    ${String(r.bookkeeping.finished_at)} by ` +
        `${String(r.bookkeeping.worker_id)} in ` +
        `${String(r.bookkeeping.duration_ms)} ms, ` +
        `${String(r.bookkeeping.attempts)} ` +
        `attempt(s)`,
    );
  if (r.dispatch !== null)
    out(
      `  dispatched  ${String(r.dispatch.dispatches)} ` +
        `time(s), last ${String(r.dispatch.dispatched_at)} (run ` +
        `${String(r.dispatch.run_id)}, topic ${String(r.dispatch.topic)})`,
    );
  if (r.quarantine !== null)
    out(
      `  quarantined ${String(r.quarantine.quarantined_at)} ` +
        `at stage ${String(r.quarantine.stage)}: ` +
        `${String(r.quarantine.error_class)}: ` +
        `${String(r.quarantine.error_message).slice(0, 300)}`,
    );
  for (const m of r.milestones)
    out(
      `  milestone   ${String(m.stage)} version ${String(m.version)}` +
        `${typeof m.replaced === 'string' ? ` (replaced ${m.replaced})` : ''}, ` +
        `attempt ${String(m.attempt)}, ${String(m.duration_ms)} ms, ${String(m.created_at)}`,
    );
  if (r.recompute !== null)
    out(
      `  recompute   from ${String(r.recompute.from_stage)}, asked ${String(r.recompute.requested_at)} ` +
        `(run ${String(r.recompute.run_id)}, published ${String(r.recompute.dispatches)} time(s))`,
    );
  for (const a of r.attempts) {
    out(
      `  failed      ${String(a.stage)} ` +
        `attempt ${String(a.attempt)}` +
        `${Number(a.superseded) === 1 ? ' (before a requeue)' : ''} on ` +
        `${String(a.worker_id)} ${String(a.created_at)}: ` +
        `${String(a.error_class)}: ${String(a.error_message).slice(0, 300)}`,
    );
  }
  for (const h of r.spool)
    out(
      `  ` +
        `spool       ${h.folder}/${h.file}` +
        `${h.offset === undefined ? '' : ` offset ${h.offset}`}` +
        `${h.reason === undefined ? '' : ` (${h.reason})`}`,
    );
  if (r.spool.length === 0) out('  spool       nothing on this machine');
}

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'everything known about one task: source, result, dispatches, quarantine, milestones, attempts, spool',
  usage: '--pipeline <name> <key> [<key part> ...] [--json]',
  options: { pipeline: { type: 'string', short: 'p' }, json: { type: 'boolean' } },
  optionHelp: { pipeline: 'the pipeline (required)', json: 'print one JSON object' },
  async run({ values, positionals, config, out }) {
    const name = values.pipeline;
    if (typeof name !== 'string') throw new UsageError('--pipeline is required', 'see: sluice inspect --help');
    if (positionals.length === 0)
      throw new UsageError('give the task key (quote it for the shell)', 'see: sluice inspect --help');
    const pipeline = getPipeline(config, name);
    const pool = await openPool(config.database, { poolSize: 1 });
    let record: TaskRecord;
    let shown: string;
    try {
      await assertMigrated(pool);
      const src = await checkPipelineTables(pool, pipeline, { refuseMisfit: false });
      const typed = typedKey(src, positionals);
      if ('error' in typed)
        throw new UsageError(
          `key ${JSON.stringify(positionals.join(' '))}: ${typed.error}`,
          'see: sluice inspect --help',
        );
      record = await inspectTask(pool, src, name, typed.text, config.producer.staleAfterMs);
      shown = displayKey(src, typed.text);
    } finally {
      await pool.end();
    }
    const report = {
      pipeline: name,
      ...record,
      display: shown,
      spool: await spoolHits(spoolPaths(resolve(config.spool.dir), name), record.key),
    };
    if (values.json === true) out(JSON.stringify(report));
    else render(report, out);
    return 0;
  },
};
