// What one process's share of a resource is, from the rows its renewal read (ledger/resource-leases.ts runs
// this inside the transaction that locked the resource, so every other share is as it stands):
//   - its fair share is computed from the demands of the live shares (max-min by demand);
//   - it gets min(fair share, what the others leave free), but never less than its floor (what it may still
//     have in flight): the sum of the live shares never passes the limit;
//   - with concurrency 'auto', the leader (one process at a time, on a lease of its own) moves the learned
//     limit from everyone's samples (controller.ts).
// Pure: no SQL, no clock but the database's.

import type { LeaseDecision, LeaseRows, ShareRequest } from '../ledger/resource-leases.js';
import { initialState, nextLimit, type ControllerState } from './controller.js';
import { fairShares } from './fair-share.js';

/** How long a learned limit's state is kept without windows: after it, the controller starts from `min`. */
const STATE_FORGOTTEN_MS = 60_000;
/** The leader moves the limit at most once per window of this length. */
const WINDOW_MS = 900;

type SavedState = ControllerState & { seen?: Record<string, number>; at?: number };

export function decideShare(r: ShareRequest, rows: LeaseRows): LeaseDecision {
  const { others } = rows;
  const floor = rows.held ? r.floor : 0;
  const rateFloor = rows.held ? r.rateFloor : 0;
  const leader = r.concurrency !== null && typeof r.concurrency === 'object' && !rows.otherLeader;
  const { limit, learned } = concurrencyLimit(r, rows, leader);
  const demands = new Map<string, number>([
    ...others.map((o): [string, number] => [o.processId, o.demand]),
    [r.processId, r.demand],
  ]);
  let concurrency = Infinity;
  let target = { concurrency: Infinity, rate: Infinity };
  if (limit !== null) {
    const free = limit - others.reduce((a, o) => a + o.concurrencyShare, 0);
    const fair = fairShares(limit, demands, true).get(r.processId) ?? 0;
    concurrency = Math.max(floor, Math.min(fair, free));
    target = { ...target, concurrency: fair };
  }
  let rate = Infinity;
  let burst = 0;
  if (r.rate !== null) {
    const free = r.rate - others.reduce((a, o) => a + o.rateShare, 0);
    const wanting = new Map([...demands].map(([id, d]): [string, number] => [id, d > 0 ? Infinity : 0]));
    const fair = fairShares(r.rate, wanting, false).get(r.processId) ?? 0;
    rate = Math.max(rateFloor, Math.min(fair, free));
    burst = r.rate > 0 ? (r.burst * rate) / r.rate : 0;
    target = { ...target, rate: fair };
  }
  const fleetInFlight = others.reduce((a, o) => a + o.inFlight, 0) + r.inFlight;
  return {
    answer: { concurrency, rate, burst, limit, target, leader, processes: others.length + 1, fleetInFlight },
    learned,
  };
}

/** The concurrency limit now: fixed, or learned (moved by the leader once a window). */
function concurrencyLimit(
  r: ShareRequest,
  rows: LeaseRows,
  leader: boolean,
): { limit: number | null; learned: LeaseDecision['learned'] } {
  if (r.concurrency === null) return { limit: null, learned: null };
  if (typeof r.concurrency === 'number') return { limit: r.concurrency, learned: null };
  const bounds = r.concurrency;
  const now = rows.nowMs;
  if (!leader) return { limit: Math.floor(rows.learnedLimit ?? bounds.min), learned: null };
  const saved = rows.state as SavedState | null;
  // A state nobody moved for a while (the resource was idle, or the service may have changed) starts over.
  const fresh = saved === null || saved.at === undefined || now - saved.at > STATE_FORGOTTEN_MS;
  const state: ControllerState & { seen: Record<string, number>; at?: number } = fresh
    ? { ...initialState(bounds.min, now), seen: {} }
    : { seen: {}, ...saved };
  if (state.at !== undefined && now - state.at < WINDOW_MS) return { limit: Math.floor(state.limit), learned: null };
  const all = [...rows.others.map((o) => ({ id: o.processId, s: o.samples })), { id: r.processId, s: r.samples }];
  const w = { calls: 0, ok: 0, overloads: 0, latencySumMs: 0 };
  const seen: Record<string, number> = {};
  for (const { id, s } of all) {
    if (s === null) continue;
    seen[id] = s.seq;
    if ((state.seen[id] ?? -1) >= s.seq) continue;
    w.calls += s.calls;
    w.ok += s.ok;
    w.overloads += s.overloads;
    w.latencySumMs += s.latencySumMs;
  }
  const demand = rows.others.reduce((a, o) => a + o.demand, 0) + r.demand;
  const next = nextLimit(
    state,
    { calls: w.calls, ok: w.ok, overloads: w.overloads, latencyMs: w.ok > 0 ? w.latencySumMs / w.ok : null, demand },
    bounds,
    now,
  );
  const limit = Math.min(bounds.max, Math.max(bounds.min, next.limit));
  return { limit: Math.floor(limit), learned: { limit, state: { ...next, limit, seen, at: now } } };
}
