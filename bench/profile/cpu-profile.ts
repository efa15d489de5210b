// Reads a V8 .cpuprofile (node --cpu-prof) and says where the time went: self time by where the code lives
// (a sluice folder, a dependency, node itself, the garbage collector, idle), and inclusive time of the sluice
// features a change might add to the per-task path (counted once per stack: a feature's time includes what
// it calls, and a call nested in the same feature is not counted twice).
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface CpuBreakdown {
  /** Sampled time in ms, idle excluded. */
  busyMs: number;
  idleMs: number;
  byPlace: Array<{ place: string; ms: number }>;
  byFeature: Array<{ feature: string; ms: number }>;
  topFunctions: Array<{ fn: string; ms: number }>;
}

/** sluice's features, by the files they live in (inclusive time). */
export const FEATURES: ReadonlyArray<readonly [string, RegExp]> = [
  ['spool: claim, read, complete segments', /\/src\/spool\//],
  ['ledger snapshot read + source-membership check (task-state)', /\/src\/db\/task-state\.ts/],
  ['ledger writes (milestones, results)', /\/src\/db\/ledger\.ts/],
  ['key gate', /\/src\/worker\/key-gate\.ts/],
  ['stage runner (run-task, limits, retry)', /\/src\/worker\/(run-task|limits)\.ts|\/src\/core\/retry\.ts/],
  ['resource gate', /\/src\/resources\//],
  ['heartbeats', /\/src\/core\/heartbeat\.ts|\/src\/db\/processes\.ts/],
  ['metrics', /\/src\/metrics\/|prom-client/],
  ['logging (pino)', /node_modules\/pino/],
  ['user result table (result-row, results-table)', /\/src\/worker\/result-row\.ts|\/src\/db\/results-table\.ts/],
];

function place(url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : '(native / V8 builtins)';
  const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (dep !== null) return dep[1] === 'tsx' || dep[1] === 'esbuild' ? 'tsx (loading TypeScript)' : dep[1]!;
  const own = /\/src\/([^/]+)\//.exec(url);
  if (own !== null) return `sluice src/${own[1]}/`;
  if (url.startsWith('node:internal/modules')) return 'node module loader (start-up)';
  if (url.startsWith('node:')) return `node ${url.replace(/^node:(internal\/)?/, '').split('/')[0]}`;
  return 'other';
}

export function analyse(file: string): CpuBreakdown {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000));

  const places = new Map<string, number>();
  const features = new Map<string, number>();
  const fns = new Map<string, number>();
  let idleMs = 0;
  for (const [id, ms] of self) {
    const n = byId.get(id)!;
    const { url, functionName, lineNumber } = n.callFrame;
    if (functionName === '(idle)') {
      idleMs += ms;
      continue;
    }
    add(places, place(url, functionName), ms);
    add(fns, `${functionName || '(anonymous)'} ${url.replace(/^.*\/(src|node_modules)\//, '$1/')}:${lineNumber + 1}`, ms);
    // Each feature once per stack, however deep it recurses.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const u = byId.get(at)!.callFrame.url;
      for (const [feature, re] of FEATURES) if (!seen.has(feature) && re.test(u)) seen.add(feature);
    }
    for (const f of seen) add(features, f, ms);
  }
  const sorted = <K extends string>(m: Map<string, number>, k: K): Array<Record<K, string> & { ms: number }> =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).map(([name, ms]) => ({ [k]: name, ms }) as Record<K, string> & { ms: number });
  const busyMs = [...places.values()].reduce((a, b) => a + b, 0);
  return { busyMs, idleMs, byPlace: sorted(places, 'place'), byFeature: sorted(features, 'feature'), topFunctions: sorted(fns, 'fn').slice(0, 15) };
}

function add(m: Map<string, number>, k: string, v: number): void {
  m.set(k, (m.get(k) ?? 0) + v);
}
