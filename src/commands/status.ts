// `sluice status --pipeline <name>` (npm run status): what is done, pending, in flight and quarantined,
// per-stage progress, recent errors, consumer lag and this machine's spool, at a glance.

import { UsageError } from '../core/errors.js';
import { collectStatus, EXACT_BELOW_ROWS, isComplete, isCurrent } from '../status/collect.js';
import { renderStatus } from '../status/render.js';
import type { Command } from './command.js';

export const statusCommand: Command = {
  name: 'status',
  summary: 'done, pending, in flight and quarantined tasks, stage progress, errors, consumer lag, spool depth',
  usage: '--pipeline <name> [--json] [--check [--current]] [--exact | --estimate]',
  details: [
    '--check exits 1 while any source row has no result (pending, in flight or quarantined): a gate for cron or CI.',
    '--check --current also exits 1 while any done task is stale (a stage version changed: produce --recompute).',
    `Counts are exact (a semi-join of the source with the results) on a ` +
      `source under ${EXACT_BELOW_ROWS.toLocaleString('en')} rows; on a larger one they`,
    'are an estimate: the last whole-table count (each produce takes one) plus the results recorded since.',
  ],
  options: {
    pipeline: { type: 'string', short: 'p' },
    json: { type: 'boolean' },
    check: { type: 'boolean' },
    exact: { type: 'boolean' },
    estimate: { type: 'boolean' },
    current: { type: 'boolean' },
  },
  optionHelp: {
    pipeline: 'the pipeline (required)',
    json: 'print one JSON object',
    check: 'exit 1 unless every source row has a result (always exact)',
    exact: 'count exactly whatever the size (about 2.4 s per million source rows)',
    estimate: 'the cheap counts whatever the size (not with --check)',
    current: 'count the done tasks a stage version change made stale (with --check: require none)',
  },
  async run({ values, config, log, out }) {
    const name = values.pipeline;
    if (typeof name !== 'string') throw new UsageError('--pipeline is required', 'see: sluice status --help');
    if (values.check === true && values.estimate === true)
      throw new UsageError('--check needs exact counts; leave out --estimate', 'see: sluice status --help');
    if (values.exact === true && values.estimate === true)
      throw new UsageError('--exact and --estimate contradict each other; give one', 'see: sluice status --help');
    const exact = values.check === true || values.exact === true ? true : values.estimate === true ? false : undefined;
    const current = values.current === true;
    const report = await collectStatus(config, name, log, { exact, current });
    if (values.json === true) out(JSON.stringify(report));
    else renderStatus(report, out);
    if (values.check !== true) return 0;
    return (current ? isCurrent(report) : isComplete(report)) ? 0 : 1;
  },
};
