// A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text
// exposition format (version 0.0.4). Small enough to own instead of adding a dependency; an update costs
// one label-string lookup in a map.
//
// Gauges that mirror a component's own state (spool depth, lag, paused) are read at scrape time through
// `collect` callbacks, so the components need not push them.

type Labels = Record<string, string>;

const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const labelText = (labels: Labels): string => {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
};
const num = (n: number): string => (Number.isFinite(n) ? String(n) : n > 0 ? '+Inf' : n < 0 ? '-Inf' : 'NaN');

interface Metric {
  render(): string[] | Promise<string[]>;
}

abstract class Family<S> implements Metric {
  protected readonly series = new Map<string, { labels: Labels; value: S }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
  ) {}
  protected abstract fresh(): S;
  protected get(labels: Labels): S {
    const k = labelText(labels);
    let s = this.series.get(k);
    if (s === undefined) {
      s = { labels, value: this.fresh() };
      this.series.set(k, s);
    }
    return s.value;
  }
  protected abstract lines(labels: Labels, value: S): string[];
  render(): string[] | Promise<string[]> {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    for (const { labels, value } of this.series.values()) out.push(...this.lines(labels, value));
    return out;
  }
}

/** One number per label set: the shape of counters and gauges. */
abstract class Scalar extends Family<{ n: number }> {
  protected fresh(): { n: number } {
    return { n: 0 };
  }
  protected lines(labels: Labels, v: { n: number }): string[] {
    return [`${this.name}${labelText(labels)} ${num(v.n)}`];
  }
}

export class Counter extends Scalar {
  constructor(name: string, help: string) {
    super(name, help, 'counter');
  }
  inc(labels: Labels = {}, by = 1): void {
    this.get(labels).n += by;
  }
  value(labels: Labels = {}): number {
    return this.series.get(labelText(labels))?.value.n ?? 0;
  }
}

export type Collect = (set: (labels: Labels, value: number) => void) => void | Promise<void>;

/** A value set directly, or read at scrape time by `collect` (then `type` may be 'counter' for a total kept elsewhere). */
export class Gauge extends Scalar {
  constructor(
    name: string,
    help: string,
    private readonly collect?: Collect,
    type: 'gauge' | 'counter' = 'gauge',
  ) {
    super(name, help, type);
  }
  set(labels: Labels, value: number): void {
    this.get(labels).n = value;
  }
  override async render(): Promise<string[]> {
    if (this.collect !== undefined) {
      this.series.clear();
      await this.collect((labels, value) => this.set(labels, value));
    }
    return super.render() as string[];
  }
}

interface Buckets {
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram extends Family<Buckets> {
  constructor(
    name: string,
    help: string,
    private readonly bounds: readonly number[],
  ) {
    super(name, help, 'histogram');
  }
  protected fresh(): Buckets {
    return { counts: this.bounds.map(() => 0), sum: 0, count: 0 };
  }
  observe(labels: Labels, value: number): void {
    const b = this.get(labels);
    for (let i = 0; i < this.bounds.length; i++) if (value <= this.bounds[i]!) b.counts[i]!++;
    b.sum += value;
    b.count++;
  }
  protected lines(labels: Labels, b: Buckets): string[] {
    const out = this.bounds.map((le, i) => `${this.name}_bucket${labelText({ ...labels, le: num(le) })} ${b.counts[i]}`);
    out.push(`${this.name}_bucket${labelText({ ...labels, le: '+Inf' })} ${b.count}`);
    out.push(`${this.name}_sum${labelText(labels)} ${num(b.sum)}`, `${this.name}_count${labelText(labels)} ${b.count}`);
    return out;
  }
}

export class Registry {
  readonly #metrics: Metric[] = [];
  register<M extends Metric>(m: M): M {
    this.#metrics.push(m);
    return m;
  }
  async render(): Promise<string> {
    const parts = await Promise.all(this.#metrics.map((m) => m.render()));
    return `${parts.flat().join('\n')}\n`;
  }
}

/** Stage durations: 1 ms to 2 min, the span between a no-op and a slow remote call. */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** What the worker records per stage; passed to it when metrics are on. */
export interface StageMetrics {
  processed: Counter;
  failed: Counter;
  retried: Counter;
  duration: Histogram;
  tasks: Counter;
}

export function stageMetrics(registry: Registry): StageMetrics {
  return {
    processed: registry.register(new Counter('sluice_stage_processed_total', 'Stage runs that succeeded.')),
    failed: registry.register(new Counter('sluice_stage_failed_total', 'Stage runs that threw or timed out (retried or not).')),
    retried: registry.register(new Counter('sluice_stage_retried_total', 'Failed stage runs that will be retried after backoff.')),
    duration: registry.register(new Histogram('sluice_stage_duration_seconds', 'Duration of stage runs, successful or not.', DURATION_BUCKETS)),
    tasks: registry.register(new Counter('sluice_tasks_total', 'Tasks finished by this process, by outcome (done, dead, skipped).')),
  };
}
