// Reads a V8 .cpuprofile (node --cpu-prof) and says where the time went, two ways that each add up to the whole:
// self time by where the code lives (a sluice folder, a dependency, node itself, the garbage collector), and
// time by sluice feature: each sample is charged to the nearest frame on its stack that belongs to a feature
// (or to other sluice code), so a dependency or builtin a feature calls is the feature's, a feature another one
// calls is not the caller's, and what runs with no sluice frame at all (a driver reading its socket, the
// garbage collector) is shown by where it runs.
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

/** sluice's features, by the files they live in; logging and metrics by their libraries. */
export const FEATURES: ReadonlyArray<readonly [string, RegExp]> = [
  ['spool: claim, read, complete segments', /\/src\/spool\//],
  ['ledger snapshot read + source-membership check (task-state)', /\/src\/(db|ledger)\/task-state\.ts/],
  ['ledger writes (milestones, results)', /\/src\/db\/ledger\.ts|\/src\/ledger\/ledger-writer\.ts/],
  ['key gate', /\/src\/worker\/key-gate\.ts/],
  ['stage runner (run-task, limits, retry)', /\/src\/worker\/(run-task|limits)\.ts|\/src\/core\/retry\.ts/],
  ['resource gate', /\/src\/resources\//],
  ['heartbeats', /\/src\/(core|ledger)\/heartbeat\.ts|\/src\/(db|ledger)\/processes\.ts/],
  ['metrics', /\/src\/metrics\/|\/src\/core\/metrics\.ts|prom-client/],
  ['logging (pino)', /node_modules\/pino/],
  [
    'user result table (result-row, results-table)',
    /\/src\/worker\/result-row\.ts|\/src\/(db|user-tables)\/results-table\.ts/,
  ],
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
    add(
      fns,
      `${functionName || '(anonymous)'} ${url.replace(/^.*\/(src|node_modules)\//, '$1/')}:${lineNumber + 1}`,
      ms,
    );
    add(features, featureOf(id, byId, parent) ?? `no sluice frame: ${place(url, functionName)}`, ms);
  }
  const sorted = <K extends string>(m: Map<string, number>, k: K): Array<Record<K, string> & { ms: number }> =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([name, ms]) => ({ [k]: name, ms }) as Record<K, string> & { ms: number });
  const busyMs = [...places.values()].reduce((a, b) => a + b, 0);
  return {
    busyMs,
    idleMs,
    byPlace: sorted(places, 'place'),
    byFeature: sorted(features, 'feature'),
    topFunctions: sorted(fns, 'fn').slice(0, 15),
  };
}

/** The feature of the nearest frame on the stack that has one; other sluice code by its folder. */
function featureOf(id: number, byId: Map<number, ProfileNode>, parent: Map<number, number>): string | undefined {
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const url = byId.get(at)!.callFrame.url;
    const hit = FEATURES.find(([, re]) => re.test(url));
    if (hit !== undefined) return hit[0];
    const own = /\/src\/(.+)\.ts$/.exec(url);
    if (own !== null) return `other sluice code: src/${own[1]!.replace(/\/[^/]+$/, '/')}`;
  }
  return undefined;
}

function add(m: Map<string, number>, k: string, v: number): void {
  m.set(k, (m.get(k) ?? 0) + v);
}
