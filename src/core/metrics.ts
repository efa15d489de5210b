// sluice's Prometheus metrics, on prom-client: the stage counters and histograms the worker records, the
// gauges read from a component's state at scrape time, and prom-client's default process metrics
// (event-loop lag, heap, GC, CPU, open handles), each in its own registry per process.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export { Registry };

/** Stage durations: 1 ms to 2 min, the span between a no-op and a slow remote call. */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** What the worker records per stage; passed to it when metrics are on. */
export interface StageMetrics {
  processed: Counter<'pipeline' | 'stage'>;
  failed: Counter<'pipeline' | 'stage'>;
  retried: Counter<'pipeline' | 'stage'>;
  duration: Histogram<'pipeline' | 'stage'>;
  tasks: Counter<'pipeline' | 'outcome'>;
}

/** A registry with the default process metrics. */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

export function stageMetrics(registry: Registry): StageMetrics {
  const registers = [registry];
  const stage = ['pipeline', 'stage'] as const;
  return {
    processed: new Counter({
      name: 'sluice_stage_processed_total',
      help: 'Stage runs that succeeded.',
      labelNames: stage,
      registers,
    }),
    failed: new Counter({
      name: 'sluice_stage_failed_total',
      help: 'Stage runs that threw or timed out (retried or not).',
      labelNames: stage,
      registers,
    }),
    retried: new Counter({
      name: 'sluice_stage_retried_total',
      help: 'Failed stage runs that will be retried after backoff.',
      labelNames: stage,
      registers,
    }),
    duration: new Histogram({
      name: 'sluice_stage_duration_seconds',
      help: 'Duration of stage runs, successful or not.',
      labelNames: stage,
      buckets: DURATION_BUCKETS,
      registers,
    }),
    tasks: new Counter({
      name: 'sluice_tasks_total',
      help: 'Tasks finished by this process, by outcome (done, dead, skipped).',
      labelNames: ['pipeline', 'outcome'],
      registers,
    }),
  };
}

type Labels = Record<string, string>;
export type Collect = (set: (labels: Labels, value: number) => void) => void | Promise<void>;

/**
 * A value mirrored from a component's state, read at scrape time. `type: 'counter'` for a total the
 * component keeps itself (exposed with counter semantics: it only grows while the process lives).
 */
export function mirror(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly string[],
  collect: Collect,
  type: 'gauge' | 'counter' = 'gauge',
): void {
  const registers = [registry];
  if (type === 'gauge') {
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      async collect() {
        this.reset();
        await collect((labels, value) => this.set(labels, value));
      },
    });
    return;
  }
  new Counter({
    name,
    help,
    labelNames,
    registers,
    async collect() {
      this.reset();
      await collect((labels, value) => this.inc(labels, value));
    },
  });
}
