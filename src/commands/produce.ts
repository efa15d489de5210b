// `sluice produce --pipeline <name>` (npm run produce): publish every task that has no result yet.

import { UsageError } from '../core/errors.js';
import { produce, type ProduceSummary } from '../producer/producer.js';
import type { Command, CommandContext } from './command.js';
import { asText } from '../core/text.js';

/** Exit code when the run finished but skipped tasks (too large, unserialisable): they need attention. */
export const EXIT_SKIPPED = 5;
export const EXIT_INTERRUPTED = 130;

function positiveInt(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a whole number, got '${asText(v)}'`);
  return n;
}

function report(s: ProduceSummary, out: (l: string) => void): void {
  const c = s.counts;
  out(`pipeline ${s.pipeline} -> topic ${s.topic} (run ${s.runId})`);
  if (s.dryRun) {
    if (c !== null) {
      out(
        `  pending             ${c.pending}  ` +
          `(source ${c.source}, done ${c.done}, no result ${c.missing}, ` +
          `in flight ${c.inFlight}, quarantined ${c.quarantined})`,
      );
      if (c.orphans > 0) out(`  results without a source row ${c.orphans} (not counted as done)`);
    }
    out('  dry run: nothing published');
    return;
  }
  out(`  pending found       ${s.found}`);
  out(
    `  published           ${s.published}  ` +
      `(recorded ${s.recorded}, ${s.batches} batch(es) of ` +
      `at most ${s.batchLimitBytes} bytes)`,
  );
  out(`  skipped as in flight ${c === null ? 'not counted (--no-count)' : c.inFlight}`);
  if (s.requeuedQuarantined > 0) out(`  requeued from quarantine ${s.requeuedQuarantined}`);
  const skipped = s.skipped.tooLarge + s.skipped.unserialisable + s.skipped.emptyKey;
  if (skipped > 0) {
    out(
      `  SKIPPED             ${skipped}  (too large ${s.skipped.tooLarge}, ` +
        `unserialisable ${s.skipped.unserialisable}, ` +
        `empty key ${s.skipped.emptyKey})`,
    );
    for (const t of s.skippedTasks.slice(0, 10)) out(`    key ${JSON.stringify(t.key)}: ${t.reason}`);
  }
  out(
    `  time        ` +
      `        ${s.seconds.toFixed(1)} s, ${Math.round(s.rate)} tasks/s` +
      `${s.interrupted ? '  (interrupted: rerun to continue)' : ''}`,
  );
}

export const produceCommand: Command = {
  name: 'produce',
  summary: 'publish every source row without a result (and not in flight) to the pipeline topic',
  usage: '--pipeline <name> [options]',
  details: [
    'Rerun it at any time: it publishes only what is still missing. Ctrl-C stops after the batch in hand.',
    `Exit codes: 0 done, ${EXIT_SKIPPED} done but some tasks were skipped (listed), 3 Kafka or database ` +
      `unavailable, ${EXIT_INTERRUPTED} interrupted.`,
  ],
  options: {
    pipeline: { type: 'string', short: 'p' },
    all: { type: 'boolean' },
    'retry-quarantined': { type: 'boolean' },
    'retry-dead': { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    limit: { type: 'string' },
    'no-count': { type: 'boolean' },
    json: { type: 'boolean' },
  },
  optionHelp: {
    pipeline: 'the pipeline to produce (required)',
    all: 'publish tasks still in flight too (ignore dispatch records)',
    'retry-quarantined': 'publish quarantined tasks too, taking them out of quarantine',
    'retry-dead': 'the same as --retry-quarantined (its earlier name)',
    'dry-run': 'count pending, in-flight and quarantined tasks; publish nothing',
    limit: 'publish at most this many tasks',
    'no-count': 'skip the count query (no total, no ETA) on very large tables',
    json: 'print the summary as one JSON object',
  },
  async run(ctx: CommandContext) {
    const { values, config } = ctx;
    const pipeline = values.pipeline;
    if (typeof pipeline !== 'string') throw new UsageError('--pipeline is required', 'see: sluice produce --help');
    const summary = await produce({
      config,
      pipeline,
      log: ctx.log,
      shutdown: ctx.shutdown,
      all: values.all === true,
      retryQuarantined: values['retry-quarantined'] === true || values['retry-dead'] === true,
      dryRun: values['dry-run'] === true,
      limit: positiveInt('limit', values.limit),
      count: values['no-count'] !== true,
      progress: ctx.progress,
    });
    if (values.json === true) ctx.out(JSON.stringify(summary));
    else report(summary, ctx.out);
    if (summary.interrupted) return EXIT_INTERRUPTED;
    return summary.skipped.tooLarge + summary.skipped.unserialisable + summary.skipped.emptyKey > 0 ? EXIT_SKIPPED : 0;
  },
};
