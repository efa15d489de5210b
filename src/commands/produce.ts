// `sluice produce --pipeline <name>` (npm run produce): publish every task that has no result yet.

import { UsageError } from '../core/errors.js';
import { produce, type ProduceSummary } from '../producer/producer.js';
import type { Command, CommandContext } from './command.js';
import { asText } from '../core/text.js';
import { readFileSync } from 'node:fs';
import type { RecomputeOptions } from '../producer/recompute.js';

/** Exit code when the run finished but skipped tasks (too large, unserialisable): they need attention. */
export const EXIT_SKIPPED = 5;
export const EXIT_INTERRUPTED = 130;

function positiveInt(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a whole number, got '${asText(v)}'`);
  return n;
}

type Values = CommandContext['values'];

function recomputeOptions(values: Values): RecomputeOptions | undefined {
  const needs = ['from-stage', 'include-offline', 'accept', 'stage', 'rate'].filter((k) => values[k] !== undefined);
  if (values.recompute !== true) {
    if (needs.length > 0) throw new UsageError(`--${needs[0]} needs --recompute`, 'see: sluice produce --help');
    return undefined;
  }
  if (values.accept === true && typeof values.stage !== 'string')
    throw new UsageError('--accept needs --stage <name>: the stage whose current version to accept');
  const besides = ['from-stage', 'include-offline', 'rate', 'dry-run'].filter((k) => values[k] !== undefined);
  if (values.accept === true && besides.length > 0)
    throw new UsageError(
      `--accept runs nothing and publishes nothing: --${besides[0]} does not go with it`,
      'to see what is stale first: sluice produce --pipeline <name> --recompute --dry-run',
    );
  if (values.accept !== true && values.stage !== undefined)
    throw new UsageError('--stage goes with --accept; to recompute from a stage, give --from-stage');
  const rate = values.rate === undefined ? undefined : Number(values.rate);
  if (rate !== undefined && !(rate > 0 && Number.isFinite(rate)))
    throw new UsageError(`--rate must be a number of tasks a second above 0, got '${asText(values.rate)}'`);
  return {
    ...(typeof values['from-stage'] === 'string' ? { fromStage: values['from-stage'] } : {}),
    includeOffline: values['include-offline'] === true,
    ...(values.accept === true ? { accept: values.stage as string } : {}),
    ...(rate === undefined ? {} : { ratePerSecond: rate }),
  };
}

function readLines(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split(/\r?\n/);
  } catch (err) {
    throw new UsageError(`--keys-file ${file}: ${(err as Error).message}`);
  }
}

function reportRecompute(s: ProduceSummary, out: (l: string) => void): void {
  const r = s.recompute;
  if (r === undefined) return;
  if (r.acceptedStage !== undefined) {
    out(`  accepted            ${r.accepted} milestone(s) of stage ${r.acceptedStage} as its current version`);
    return;
  }
  if (r.checkedByIndex) out('  stale               0  (every milestone is of the current stage versions)');
  else if (s.dryRun) {
    out(`  stale               ${r.stale}`);
    for (const g of r.groups)
      out(`    from ${g.stage.padEnd(16)} ${String(g.tasks).padStart(10)}  ${g.from ?? '(no milestone)'} -> ${g.to}`);
  } else out(`  stale published     ${r.stale}`);
}

function report(s: ProduceSummary, out: (l: string) => void): void {
  const c = s.counts;
  out(`pipeline ${s.pipeline} -> topic ${s.topic} (run ${s.runId})`);
  if (s.recompute?.acceptedStage !== undefined) return reportRecompute(s, out);
  if (s.dryRun) {
    if (c !== null) {
      out(
        `  pending             ${c.pending}  ` +
          `(source ${c.source}, done ${c.done}, no result ${c.missing}, ` +
          `in flight ${c.inFlight}, quarantined ${c.quarantined})`,
      );
      if (c.orphans > 0) out(`  results without a source row ${c.orphans} (not counted as done)`);
    }
    reportRecompute(s, out);
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
  reportRecompute(s, out);
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
    recompute: { type: 'boolean' },
    'from-stage': { type: 'string' },
    'include-offline': { type: 'boolean' },
    accept: { type: 'boolean' },
    stage: { type: 'string' },
    where: { type: 'string' },
    'keys-file': { type: 'string' },
    rate: { type: 'string' },
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
    recompute: 'then publish the done tasks a stage version change made stale (docs/recompute.md)',
    'from-stage': 'with --recompute: recompute the selected done tasks from this stage, versions or not',
    'include-offline': 'with --recompute: done tasks without milestones (an offline run) are stale too',
    accept: "with --recompute --stage <s>: mark the stage's current version current; run nothing",
    stage: 'the stage --accept marks current',
    where: "only source rows this SQL condition selects (besides the pipeline's source.where)",
    'keys-file': 'only the tasks whose keys this file lists, one a line, as `inspect` takes them',
    rate: 'with --recompute: publish stale tasks at most this many a second',
  },
  async run(ctx: CommandContext) {
    const { values, config } = ctx;
    const pipeline = values.pipeline;
    if (typeof pipeline !== 'string') throw new UsageError('--pipeline is required', 'see: sluice produce --help');
    const recompute = recomputeOptions(values);
    const keysFile = values['keys-file'];
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
      ...(recompute === undefined ? {} : { recompute }),
      ...(typeof values.where === 'string' ? { where: values.where } : {}),
      ...(typeof keysFile === 'string' ? { typedKeys: { label: keysFile, lines: readLines(keysFile) } } : {}),
    });
    if (values.json === true) ctx.out(JSON.stringify(summary));
    else report(summary, ctx.out);
    if (summary.interrupted) return EXIT_INTERRUPTED;
    return summary.skipped.tooLarge + summary.skipped.unserialisable + summary.skipped.emptyKey > 0 ? EXIT_SKIPPED : 0;
  },
};
