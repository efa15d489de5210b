// Reads a V8 heap snapshot (node --heapsnapshot-signal) and totals the live objects' own sizes by kind
// (type and constructor or string), so that two snapshots of one run, taken after different numbers of tasks,
// say what the heap keeps per task seen.
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Bytes by kind, e.g. "object Map", "string", "array (object elements)". */
export function heapByKind(file: string): Map<string, number> {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = fields.length;
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
  const out = new Map<string, number>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]!] ?? '?';
    // Strings are many and unique: one line for all of them; other kinds by constructor name.
    const name =
      type === 'string' || type === 'concatenated string' || type === 'sliced string'
        ? ''
        : ` ${(s.strings[s.nodes[i + iName]!] ?? '').slice(0, 60)}`;
    const kind = `${type}${name}`;
    out.set(kind, (out.get(kind) ?? 0) + s.nodes[i + iSize]!);
  }
  return out;
}

/** What grew from `a` to `b`, per unit (per task seen), largest first. */
export function growth(
  a: Map<string, number>,
  b: Map<string, number>,
  units: number,
  top = 10,
): Array<{ kind: string; bytesPerUnit: number }> {
  const kinds = new Set([...a.keys(), ...b.keys()]);
  return [...kinds]
    .map((kind) => ({ kind, bytesPerUnit: ((b.get(kind) ?? 0) - (a.get(kind) ?? 0)) / units }))
    .sort((x, y) => y.bytesPerUnit - x.bytesPerUnit)
    .slice(0, top);
}

export const total = (m: Map<string, number>): number => [...m.values()].reduce((x, y) => x + y, 0);
