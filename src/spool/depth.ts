// How much the spool holds, from file names alone (segment names carry their item count and size).

import { readdir } from 'node:fs/promises';
import { parseClaimedName, parseSegmentName, type SpoolPaths } from './layout.js';

export interface SpoolDepth {
  items: number;
  bytes: number;
  readySegments: number;
  claimedSegments: number;
}

export async function spoolDepth(p: SpoolPaths): Promise<SpoolDepth> {
  const d: SpoolDepth = { items: 0, bytes: 0, readySegments: 0, claimedSegments: 0 };
  for (const name of await readdir(p.ready).catch(() => [] as string[])) {
    const m = parseSegmentName(name);
    if (m === null) continue;
    d.items += m.count;
    d.bytes += m.bytes;
    d.readySegments++;
  }
  for (const name of await readdir(p.claimed).catch(() => [] as string[])) {
    const c = parseClaimedName(name);
    const m = c === null ? null : parseSegmentName(c.segment);
    if (m === null) continue;
    d.items += m.count;
    d.bytes += m.bytes;
    d.claimedSegments++;
  }
  return d;
}
