// `sluice fetch --pipeline <name>` (npm run fetch): pre-pull the pipeline's messages into the local spool
// until stopped (Ctrl-C or SIGTERM: the batch in hand is made durable and committed first).

import { UsageError } from '../core/errors.js';
import { startFetcher } from '../fetcher/fetcher.js';
import type { Command } from './command.js';
import { startMetricsEndpoint } from '../metrics/endpoint.js';
import { feedPanel } from './panel-feed.js';

export const fetchCommand: Command = {
  name: 'fetch',
  summary: "pull the pipeline's messages from Kafka into this machine's spool, durably, with backpressure",
  usage: '--pipeline <name> [--spool-dir <dir>] [--metrics-port <port>]',
  details: [
    'Run one per worker machine; every fetcher of a pipeline joins the same consumer group.',
    'Offsets are committed only after the spool write is on disk: a crash loses nothing.',
  ],
  options: { pipeline: { type: 'string', short: 'p' } },
  optionHelp: { pipeline: 'the pipeline to fetch (required)' },
  async run({ values, config, log, shutdown, out, panel }) {
    const pipeline = values.pipeline;
    if (typeof pipeline !== 'string') throw new UsageError('--pipeline is required', 'see: sluice fetch --help');
    const cfg = config;
    const metrics = await startMetricsEndpoint(cfg.metrics, log);
    try {
      const fetcher = await startFetcher({ config: cfg, pipeline, log });
      metrics?.watch({ pipeline, fetcher });
      const stopFeed = panel === null ? async () => {} : feedPanel(panel, { pipeline, fetcher });
      void fetcher.done.finally(stopFeed).catch(() => {});
      shutdown.onStop(() => void fetcher.stop());
      const s = await fetcher.done;
      out(
        `fetch ${pipeline}: spooled ${s.spooled} item(s) in ${s.segments} ` +
          `segment(s), quarantined ${s.quarantined}, ${s.seconds.toFixed(1)} ` +
          `s; spool ${fetcher.paths.root} holds ${s.depth.items} item(s)`,
      );
      return 0;
    } finally {
      await metrics?.close();
    }
  },
};
