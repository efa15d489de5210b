// `sluice work --pipeline <name>` (npm run work) and `sluice run --pipeline <name>` (npm run run: fetcher
// and workers in one process, for small setups).

import { UsageError } from '../core/errors.js';
import type { SluiceConfig } from '../config/config.js';
import { startFetcher } from '../fetcher/fetcher.js';
import { startWorker } from '../worker/worker.js';
import { openPool } from '../db/pool.js';
import type { Command, CommandContext, OptionValues } from './command.js';
import { startMetricsEndpoint } from '../metrics/endpoint.js';
import { Registry, stageMetrics, type StageMetrics } from '../core/metrics.js';
import { feedPanel } from './panel-feed.js';

/** Stage counters for the panel: the metrics endpoint's when it is on, otherwise a private set. */
export function panelStages(ctx: CommandContext, fromEndpoint: StageMetrics | undefined): StageMetrics | undefined {
  return fromEndpoint ?? (ctx.panel === null ? undefined : stageMetrics(new Registry()));
}

function options(values: OptionValues, config: SluiceConfig, name: string): { pipeline: string; config: SluiceConfig } {
  const pipeline = values.pipeline;
  if (typeof pipeline !== 'string') throw new UsageError('--pipeline is required', `see: sluice ${name} --help`);
  return { pipeline, config };
}

const common = {
  options: { pipeline: { type: 'string', short: 'p' }, 'exit-when-idle': { type: 'boolean' } },
  optionHelp: {
    pipeline: 'the pipeline to work on (required)',
    'exit-when-idle': 'stop once the spool is empty instead of waiting for more',
  },
} as const;

export const workCommand: Command = {
  name: 'work',
  summary: "run the pipeline's stages on this machine's spooled tasks (per-stage limits, milestones, retries)",
  usage: '--pipeline <name> [--spool-dir <dir>] [--metrics-port <port>] [--exit-when-idle]',
  details: [
    'Start as many worker processes per machine as you like: they never run the same task at once.',
    'Ctrl-C / SIGTERM: no new stages start, running ones get ' +
      'worker.shutdownGraceMs (10 s), the rest go back to the spool.',
  ],
  ...common,
  async run(ctx: CommandContext) {
    const { pipeline, config } = options(ctx.values, ctx.config, 'work');
    const metrics = await startMetricsEndpoint(config.metrics, ctx.log);
    const stages = panelStages(ctx, metrics?.stages);
    let stopFeed = async (): Promise<void> => {};
    try {
      const worker = await startWorker({
        config,
        pipeline,
        log: ctx.log,
        exitWhenIdle: ctx.values['exit-when-idle'] === true,
        metrics: stages,
      });
      metrics?.watch({ pipeline, worker });
      if (ctx.panel !== null) stopFeed = feedPanel(ctx.panel, { pipeline, worker, stages });
      const onStop = (): void => void worker.stop();
      ctx.shutdown.onStop(onStop);
      ctx.shutdown.onForce(onStop);
      const s = await worker.done;
      ctx.out(
        `work ${pipeline}: done ${s.done}, quarantined ${s.quarantined}, ` +
          `skipped (already done) ${s.skipped}, returned to ` +
          `the spool ${s.returned}, ${s.seconds.toFixed(1)} s`,
      );
      return 0;
    } finally {
      await stopFeed();
      await metrics?.close();
    }
  },
};

export const runCommand: Command = {
  name: 'run',
  summary: 'fetch and work in one process until stopped (small setups: one machine, one process)',
  usage: '--pipeline <name> [--spool-dir <dir>] [--metrics-port <port>]',
  options: { pipeline: common.options.pipeline },
  optionHelp: { pipeline: common.optionHelp.pipeline },
  async run(ctx: CommandContext) {
    const { pipeline, config } = options(ctx.values, ctx.config, 'run');
    const metrics = await startMetricsEndpoint(config.metrics, ctx.log);
    const stages = panelStages(ctx, metrics?.stages);
    let stopFeed = async (): Promise<void> => {};
    let releasePool = async (): Promise<void> => {};
    try {
      // One pool for the fetcher and the worker: a process of sluice holds at most database.poolSize.
      const pool = await openPool(config.database);
      releasePool = () => pool.end();
      const fetcher = await startFetcher({ config, pipeline, log: ctx.log, pool });
      const worker = await startWorker({ config, pipeline, log: ctx.log, metrics: stages, pool }).catch(
        async (err: unknown) => {
          await fetcher.stop().catch(() => {});
          throw err;
        },
      );
      metrics?.watch({ pipeline, fetcher, worker });
      if (ctx.panel !== null) stopFeed = feedPanel(ctx.panel, { pipeline, worker, fetcher, stages });
      const stopAll = (): void => {
        void worker.stop();
        void fetcher.stop();
      };
      ctx.shutdown.onStop(stopAll);
      ctx.shutdown.onForce(() => void worker.stop());
      // Either one failing stops the other (within its own bound) and fails the command.
      // They share the pool: both are stopped, not just told to, before it ends.
      const failed = async (err: unknown): Promise<never> => {
        await Promise.allSettled([worker.stop(), fetcher.stop()]);
        throw err;
      };
      const fetcherFailed = fetcher.done.then(() => new Promise<never>(() => {}), failed);
      const w = await Promise.race([worker.done.catch(failed), fetcherFailed]);
      const f = await fetcher.stop();
      ctx.out(
        `run ${pipeline}: spooled ${f.spooled}, done ${w.done}, ` +
          `quarantined ${w.quarantined + f.quarantined}, ` +
          `returned ${w.returned}, ${w.seconds.toFixed(1)} s`,
      );
      return 0;
    } finally {
      await stopFeed();
      await metrics?.close();
      await releasePool().catch((err: unknown) => ctx.log.warn({ err }, 'database pool close failed'));
    }
  },
};
