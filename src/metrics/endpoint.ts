// The opt-in Prometheus endpoint of `fetch`, `work` and `run` (metrics.port / --metrics-port): GET /metrics.
//
// Stage counters and histograms are pushed by the worker as stages finish; everything that mirrors a
// component's state (spool depth, lag, paused, in flight) is read from its handle at scrape time.

import { createServer, type Server } from 'node:http';
import type { FetcherHandle } from '../fetcher/fetcher.js';
import { spoolDepth } from '../spool/depth.js';
import type { ResourceSnapshot } from '../resources/coordinator.js';
import type { WorkerHandle } from '../worker/worker.js';
import type { MetricsConfig } from '../config/config.js';
import { ConfigError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { createRegistry, mirror, stageMetrics, type Registry, type StageMetrics } from '../core/metrics.js';

export interface MetricsEndpoint {
  readonly registry: Registry;
  /** Hand to startWorker so stage runs are counted. */
  readonly stages: StageMetrics;
  /** http://host:port/metrics */
  readonly url: string;
  /** Exposes the live state of the components this process runs. */
  watch(c: { pipeline: string; fetcher?: FetcherHandle; worker?: WorkerHandle }): void;
  close(): Promise<void>;
}

/** Starts the endpoint when `cfg.port` is set; null when metrics are off. */
export async function startMetricsEndpoint(cfg: MetricsConfig, log: Logger): Promise<MetricsEndpoint | null> {
  if (cfg.port === 0) return null;
  const registry = createRegistry();
  const stages = stageMetrics(registry);
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '/').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('see /metrics\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: unknown) => {
        log.warn({ err }, 'metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL'
          ? new ConfigError([
              `metrics.port: cannot listen on ${cfg.host}:${cfg.port} (${err.code}); choose another --metrics-port`,
            ])
          : err,
      );
    });
    server.listen(cfg.port, cfg.host, () => resolve());
  });
  // Scrapes keep connections alive; they must not keep the process from exiting.
  server.unref();
  const url = `http://${cfg.host}:${cfg.port}/metrics`;
  log.info({ url }, 'metrics endpoint listening');

  return {
    registry,
    stages,
    url,
    watch: (c) => watchComponents(registry, c),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Gauges and counters read from the components' state at scrape time. */
function watchComponents(
  registry: Registry,
  { pipeline, fetcher, worker }: { pipeline: string; fetcher?: FetcherHandle; worker?: WorkerHandle },
): void {
  const p = { pipeline };
  const paths = (fetcher ?? worker)?.paths;
  if (paths !== undefined) {
    // From the file names at scrape time: the fetcher's own figure lags behind what workers finish.
    const depth = () => spoolDepth(paths);
    mirror(
      registry,
      'sluice_spool_depth_items',
      "Items in this machine's spool (ready and claimed).",
      ['pipeline'],
      async (set) => set(p, (await depth()).items),
    );
    mirror(registry, 'sluice_spool_depth_bytes', "Bytes in this machine's spool.", ['pipeline'], async (set) =>
      set(p, (await depth()).bytes),
    );
  }
  if (fetcher !== undefined) {
    mirror(
      registry,
      'sluice_consumer_lag',
      'Messages behind the end of each partition, as of the last fetched batch.',
      ['pipeline', 'partition'],
      (set) => {
        for (const [partition, lag] of Object.entries(fetcher.stats().lag)) set({ pipeline, partition }, lag);
      },
    );
    mirror(
      registry,
      'sluice_fetcher_paused',
      '1 while fetching is paused because the spool is above its high-water mark.',
      ['pipeline'],
      (set) => set(p, fetcher.stats().paused ? 1 : 0),
    );
    mirror(
      registry,
      'sluice_fetcher_spooled_total',
      'Messages written to the spool durably.',
      ['pipeline'],
      (set) => set(p, fetcher.stats().spooled),
      'counter',
    );
    mirror(
      registry,
      'sluice_fetcher_quarantined_total',
      'Messages quarantined as bad input.',
      ['pipeline'],
      (set) => set(p, fetcher.stats().quarantined),
      'counter',
    );
    mirror(
      registry,
      'sluice_fetcher_restarts_total',
      'Restarts of a crashed Kafka consumer.',
      ['pipeline'],
      (set) => set(p, fetcher.stats().restarts),
      'counter',
    );
  }
  if (worker !== undefined) {
    mirror(registry, 'sluice_worker_in_flight', 'Tasks running in this worker process.', ['pipeline'], (set) =>
      set(p, worker.stats().inFlight),
    );
    watchResources(registry, worker);
  }
}

/** Fleet-wide resources as this process sees them (its last renewal): limit, calls in flight, its share. */
function watchResources(registry: Registry, worker: WorkerHandle): void {
  if (worker.resources().length === 0) return;
  const each =
    (f: (r: ResourceSnapshot) => number | null) => (set: (labels: Record<string, string>, value: number) => void) => {
      for (const r of worker.resources()) {
        const v = f(r);
        if (v !== null) set({ resource: r.name }, v);
      }
    };
  mirror(
    registry,
    'sluice_resource_limit',
    "A resource's fleet-wide concurrency limit (fixed or learned).",
    ['resource'],
    each((r) => r.limit),
  );
  mirror(
    registry,
    'sluice_resource_in_flight',
    'Calls in flight to a resource, fleet-wide, as of the last renewal.',
    ['resource'],
    each((r) => r.fleetInFlight),
  );
  mirror(
    registry,
    'sluice_resource_share',
    "This process's leased share of the resource's concurrency limit.",
    ['resource'],
    each((r) => r.share),
  );
  mirror(
    registry,
    'sluice_resource_overload_total',
    'Overload signals (resets, timeouts, 429/503, OverloadError) seen by this process.',
    ['resource'],
    each((r) => r.overloads),
    'counter',
  );
}
