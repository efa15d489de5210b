// What the terminal panel shows for `work`, `run`, `fetch` and `demo`, refreshed twice a second: per stage
// done, rate and retries; the worker's calls in flight; the spool; the resources; any extra lines (the
// demo's service).

import type { TerminalPanel } from './terminal-panel.js';
import type { FetcherHandle } from '../fetcher/fetcher.js';
import type { StageMetrics } from '../core/metrics.js';
import type { WorkerHandle } from '../worker/worker.js';

export interface PanelSources {
  pipeline: string;
  worker?: WorkerHandle;
  workers?: WorkerHandle[];
  fetcher?: FetcherHandle;
  stages?: StageMetrics;
  extra?: () => string[];
}

const REFRESH_MS = 500;

type Counts = Map<string, number>;

async function perStage(metric: StageMetrics['processed'] | undefined): Promise<Counts> {
  const out: Counts = new Map();
  if (metric === undefined) return out;
  for (const v of (await metric.get()).values)
    out.set(String(v.labels.stage), (out.get(String(v.labels.stage)) ?? 0) + v.value);
  return out;
}

/** Feeds the panel until the returned function is called (which draws the final figures once more). */
export function feedPanel(panel: TerminalPanel, s: PanelSources): () => Promise<void> {
  let last: { at: number; done: Counts } = { at: performance.now(), done: new Map() };
  const workers = s.workers ?? (s.worker === undefined ? [] : [s.worker]);
  const tick = async (): Promise<void> => {
    const done = await perStage(s.stages?.processed);
    const retried = await perStage(s.stages?.retried);
    const now = performance.now();
    const lines = [...done.keys()].map((stage) => {
      const rate = ((done.get(stage)! - (last.done.get(stage) ?? 0)) * 1000) / Math.max(1, now - last.at);
      return (
        `stage ${stage.padEnd(14)} done ${String(done.get(stage)).padStart(8)}  ${rate.toFixed(1).padStart(7)}/s ` +
        ` retries ${retried.get(stage) ?? 0}`
      );
    });
    last = { at: now, done };
    if (workers.length > 0) {
      const w = workers
        .map((x) => x.stats())
        .reduce((a, b) => ({
          ...a,
          done: a.done + b.done,
          quarantined: a.quarantined + b.quarantined,
          inFlight: a.inFlight + b.inFlight,
          returned: a.returned + b.returned,
        }));
      lines.push(
        `${s.pipeline}: tasks done ${w.done}, quarantined ${w.quarantined}, ` +
          `in flight ${w.inFlight}${workers.length > 1 ? ` (${workers.length} workers)` : ''}`,
      );
      for (const r of workers[0]!.resources())
        lines.push(
          `resource ${r.name}: limit ${r.limit === null ? '-' : Math.floor(r.limit)}${r.auto ? ' (learned)' : ''}, ` +
            `in flight ${r.fleetInFlight} fleet-wide over ${r.processes} ` +
            `process(es), share here ${r.share}`,
        );
    }
    if (s.fetcher !== undefined) {
      const f = s.fetcher.stats();
      lines.push(
        `spool: ${f.depth.items} item(s) waiting, fetched ${f.spooled}, ` +
          `quarantined ${f.quarantined}${f.paused ? ', fetching paused (spool above its high-water mark)' : ''}`,
      );
    }
    lines.push(...(s.extra?.() ?? []));
    panel.setLines(lines);
  };
  const timer = setInterval(() => void tick().catch(() => {}), REFRESH_MS);
  timer.unref();
  void tick().catch(() => {});
  return async () => {
    clearInterval(timer);
    await tick().catch(() => {});
  };
}
