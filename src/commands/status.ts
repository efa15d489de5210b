// `sluice status --pipeline <name>` (npm run status): what is done, pending, in flight and quarantined,
// per-stage progress, recent errors, consumer lag and this machine's spool, at a glance.

import { UsageError } from '../core/errors.js';
import { collectStatus, isComplete } from '../status/collect.js';
import { renderStatus } from '../status/render.js';
import type { Command } from './command.js';

export const statusCommand: Command = {
  name: 'status',
  summary: 'done, pending, in flight and quarantined tasks, stage progress, errors, consumer lag, spool depth',
  usage: '--pipeline <name> [--json] [--check] [--estimate]',
  details: [
    '--check exits 1 while any source row has no result (pending, in flight or quarantined): a gate for cron or CI.',
    'Counts are exact (a semi-join of the source with the results); --estimate reads the ledger tables only.',
  ],
  options: { pipeline: { type: 'string', short: 'p' }, json: { type: 'boolean' }, check: { type: 'boolean' }, estimate: { type: 'boolean' } },
  optionHelp: {
    pipeline: 'the pipeline (required)',
    json: 'print one JSON object',
    check: 'exit 1 unless every source row has a result (always exact)',
    estimate: 'cheap counts from the ledger tables, for very large sources (not with --check)',
  },
  async run({ values, config, log, out }) {
    const name = values.pipeline;
    if (typeof name !== 'string') throw new UsageError('--pipeline is required', 'see: sluice status --help');
    if (values.check === true && values.estimate === true) throw new UsageError('--check needs exact counts; leave out --estimate', 'see: sluice status --help');
    const report = await collectStatus(config, name, log, { exact: values.estimate !== true });
    if (values.json === true) out(JSON.stringify(report));
    else renderStatus(report, out);
    return values.check === true && !isComplete(report) ? 1 : 0;
  },
};
