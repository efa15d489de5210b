// `sluice demo` (npm run demo): the main job end to end on the demo data set, on a fresh machine.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../core/errors.js';
import { migrate } from '../db/migrate.js';
import { runDemo } from '../demo/run-demo.js';
import type { NerService } from '../demo/ner-service.js';
import type { FetcherHandle } from '../fetcher/fetcher.js';
import { Registry, stageMetrics } from '../core/metrics.js';
import type { WorkerHandle } from '../worker/worker.js';
import { feedPanel } from './panel-feed.js';
import type { Command } from './command.js';
import { collectStatus } from '../status/collect.js';
import { renderStatus } from '../status/render.js';
import { childLogger } from '../core/logger.js';
import { asText } from '../core/text.js';

const SERVICES = fileURLToPath(new URL('../../scripts/services.sh', import.meta.url));

export const demoCommand: Command = {
  name: 'demo',
  summary: 'run the whole job on the demo data set: services, migrations, seed, produce, fetch + work, summary',
  usage: '[--docs <n>] [--workers <n>] [--ner-slots <n>] [--ner-concurrency <n>] [--no-services]',
  details: [
    'The stage `ner` calls a simulated GPU entity-recognition service: 8 ' +
      'parallel slots, a queue beyond them (latency grows), resets above 16 ' +
      'calls at once.',
    "By default every worker shares the fleet-wide resource 'ner-gpu', whose " +
      "limit sluice learns from the service's latency and resets.",
    'With --ner-concurrency N each worker instead calls N-wide on its own: ' +
      'past 8 in all, watch the resets and the retries.',
  ],
  options: {
    docs: { type: 'string' },
    workers: { type: 'string' },
    'ner-slots': { type: 'string' },
    'ner-concurrency': { type: 'string' },
    'no-services': { type: 'boolean' },
  },
  optionHelp: {
    docs: 'documents in the demo data set (default 10000)',
    workers: 'worker instances sharing the service (default 2)',
    'ner-slots': "the service's parallel slots (default 8)",
    'ner-concurrency': 'a fixed per-worker limit on calls to the service, instead of the learned fleet-wide one',
    'no-services': 'do not run `npm run services` first',
  },
  async run({ values, config, log, out, env, shutdown, progress, panel }) {
    const docs = Number(values.docs ?? 10_000);
    if (!Number.isInteger(docs) || docs < 1)
      throw new UsageError(`--docs must be a positive whole number, got '${String(values.docs)}'`);
    const nerConcurrency = optionalCount('ner-concurrency', values['ner-concurrency']);
    const workers = optionalCount('workers', values.workers);
    const nerSlots = optionalCount('ner-slots', values['ner-slots']);
    if (values['no-services'] !== true) {
      const code = await new Promise<number>((resolve, reject) => {
        const child = spawn('bash', [SERVICES, 'up'], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...env } });
        child.on('error', reject);
        child.on('exit', (c) => resolve(c ?? 1));
      });
      if (code !== 0) return code;
    }
    await migrate(config.database, childLogger(log, { component: 'migrate' }));
    const stages = panel === null ? undefined : stageMetrics(new Registry());
    let stopFeed = async (): Promise<void> => {};
    const onStarted = (p: { workers: WorkerHandle[]; fetcher: FetcherHandle; ner: NerService }): void => {
      if (panel === null) return;
      const extra = (): string[] => {
        const n = p.ner.stats();
        return [
          `service: ${n.inService} in the service, ${n.slots} slots; ${n.served} ` +
            `served, ${n.resetsOverLimit} reset for ` +
            `going over ${n.hardLimit}, ${n.resetsRandom} reset at random`,
        ];
      };
      stopFeed = feedPanel(panel, { pipeline: 'demo', workers: p.workers, fetcher: p.fetcher, stages, extra });
    };
    const line = progress.tty && panel === null ? (l: string) => progress.write(`\r${l}   `) : undefined;
    const s = await runDemo({
      config,
      log,
      documents: docs,
      nerConcurrency,
      workers,
      nerSlots,
      shutdown,
      progress: line,
      metrics: stages,
      onStarted,
    }).finally(() => stopFeed());
    if (line !== undefined) progress.write('\n');
    out(
      `demo: ${s.done} of ${s.documents} documents done, ${s.quarantined} ` +
        `quarantined, in ${s.seconds.toFixed(1)} s (${Math.round(s.done / s.seconds)} docs/s)`,
    );
    out(
      `  ${s.offline} document(s) already had a result from an "offline run" in sluice_demo_doc_ent_map: not published`,
    );
    out(
      `  published ${s.published} task(s); milestones per stage: ${Object.entries(s.milestones)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    const limit =
      s.nerConcurrency === null
        ? `learned ` +
          `fleet-wide limit ${s.learnedLimit === null ? '?' : Math.floor(s.learnedLimit)} over ${s.workers} workers`
        : `fixed ${s.nerConcurrency} per worker, ${s.workers} workers`;
    out(
      `  entity recognition: ${s.ner.requests} calls, ${s.ner.served} ` +
        `served, ${s.ner.resetsOverLimit} reset for ` +
        `going over ${s.ner.hardLimit} at once, ${s.ner.resetsRandom} reset at ` +
        `random; at most ${s.ner.mostAtOnce} at once in the service (${limit})`,
    );
    out(`  failed attempts retried or recorded: ${s.retries}`);
    out('');
    renderStatus(await collectStatus(config, 'demo', log), out);
    return s.completed ? 0 : 1;
  },
};

function optionalCount(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`--${name} must be a positive whole number, got '${asText(v)}'`);
  return n;
}
