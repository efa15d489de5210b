// Max-min fair shares of a limit by demand (water-filling): no process gets more than it asks for, and what
// one does not need is split among the others. Every process computes the same answer from the same rows,
// so each can set its own share without asking the others. Whole units for concurrency: the remainder goes
// one by one in id order, so the sum never passes the limit.

export function fairShares(limit: number, demands: ReadonlyMap<string, number>, whole: boolean): Map<string, number> {
  const out = new Map<string, number>();
  let left = Math.max(0, limit);
  let open = [...demands.entries()].filter(([, d]) => d > 0).sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]));
  for (const [id, d] of demands) if (d <= 0) out.set(id, 0);
  while (open.length > 0) {
    const even = left / open.length;
    const [id, d] = open[0]!;
    if (d <= even) {
      out.set(id, d);
      left -= d;
      open = open.slice(1);
      continue;
    }
    // Everyone left wants more than an even split: they share what is left.
    for (const [oid] of open) out.set(oid, even);
    break;
  }
  return whole ? wholeShares(out, limit) : out;
}

function wholeShares(shares: Map<string, number>, limit: number): Map<string, number> {
  const ids = [...shares.keys()].sort();
  const floored = new Map(ids.map((id) => [id, Math.floor(shares.get(id)! + 1e-9)]));
  let spare = Math.floor(limit) - [...floored.values()].reduce((a, b) => a + b, 0);
  for (const id of ids) {
    if (spare <= 0) break;
    if (shares.get(id)! - floored.get(id)! > 1e-9) {
      floored.set(id, floored.get(id)! + 1);
      spare--;
    }
  }
  return floored;
}
