// `sluice demo` (npm run demo): the main job end to end on the demo data set, on a fresh machine.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../core/errors.js';
import { migrate } from '../db/migrate.js';
import { runDemo } from '../demo/run-demo.js';
import type { Command } from './command.js';
import { collectStatus } from '../status/collect.js';
import { renderStatus } from '../status/render.js';

const SERVICES = fileURLToPath(new URL('../../scripts/services.sh', import.meta.url));

export const demoCommand: Command = {
  name: 'demo',
  summary: 'run the whole job on the demo data set: services, migrations, seed, produce, fetch + work, summary',
  usage: '[--docs <n>] [--ner-concurrency <n>] [--no-services]',
  details: [
    'The stage `ner` calls a simulated entity-recognition service that resets connections when called more than 8-wide.',
    'Raise --ner-concurrency past 8 to watch the resets, the retries and every document still finishing.',
  ],
  options: { docs: { type: 'string' }, 'ner-concurrency': { type: 'string' }, 'no-services': { type: 'boolean' } },
  optionHelp: {
    docs: 'documents in the demo data set (default 10000)',
    'ner-concurrency': 'calls to the entity-recognition service at once (default 6; it resets above 8)',
    'no-services': 'do not run `npm run services` first',
  },
  async run({ values, config, log, out, env, shutdown, progress }) {
    const docs = Number(values.docs ?? 10_000);
    const nerConcurrency = Number(values['ner-concurrency'] ?? 6);
    if (!Number.isInteger(docs) || docs < 1) throw new UsageError(`--docs must be a positive whole number, got '${String(values.docs)}'`);
    if (!Number.isInteger(nerConcurrency) || nerConcurrency < 1) throw new UsageError('--ner-concurrency must be a positive whole number');
    if (values['no-services'] !== true) {
      const code = await new Promise<number>((resolve, reject) => {
        const child = spawn('bash', [SERVICES, 'up'], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...env } });
        child.on('error', reject);
        child.on('exit', (c) => resolve(c ?? 1));
      });
      if (code !== 0) return code;
    }
    await migrate(config.database, log.child({ component: 'migrate' }));
    const s = await runDemo({ config, log, documents: docs, nerConcurrency, shutdown, progress: progress.tty ? (l) => progress.write(`\r${l}   `) : undefined });
    if (progress.tty) progress.write('\n');
    out(`demo: ${s.done} of ${s.documents} documents done, ${s.quarantined} quarantined, in ${s.seconds.toFixed(1)} s (${Math.round(s.done / s.seconds)} docs/s)`);
    out(`  ${s.offline} document(s) already had a result from an "offline run" in sluice_demo_doc_ent_map: not published`);
    out(`  published ${s.published} task(s); milestones per stage: ${Object.entries(s.milestones).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    out(`  entity recognition: ${s.ner.requests} calls, ${s.ner.served} served, ${s.ner.resetsOverLimit} reset for going over ${s.nerMaxConcurrent} at once, ${s.ner.resetsRandom} reset at random; at most ${s.ner.mostAtOnce} at once (stage limit ${s.nerConcurrency})`);
    out(`  failed attempts retried or recorded: ${s.retries}`);
    out('');
    renderStatus(await collectStatus(config, 'demo', log), out);
    return s.completed ? 0 : 1;
  },
};
