// The fleet-wide share of one resource for one process, renewed in one short transaction (about once a
// second per process and resource; never per call). The resource's row is locked first, so renewals of one
// resource run one at a time and each sees every other share:
//   1. shares whose lease ended by the database's clock are deleted: they count for nothing;
//   2. this process's fair share is computed from the demands of the live shares (max-min by demand);
//   3. it gets min(fair share, what the others leave free), but never less than its floor (what it may still
//      have in flight): the sum of the live shares never passes the limit;
//   4. with concurrency 'auto', the leader (one process at a time, on a lease of its own) moves the learned
//      limit from everyone's samples (resources/controller.ts).

import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import { fairShares } from '../resources/fair-share.js';
import { initialState, nextLimit, type ControllerState } from '../resources/controller.js';
import type { Pool } from './pool.js';

export interface Samples {
  /** Increases with every renewal of the process: the leader counts each report once. */
  seq: number;
  calls: number;
  ok: number;
  overloads: number;
  latencySumMs: number;
}

export interface ShareRequest {
  resource: string;
  processId: string;
  /** Fixed concurrency, or 'auto' with its bounds; null when the resource limits the rate only. */
  concurrency: number | { min: number; max: number } | null;
  rate: number | null;
  burst: number;
  /** The least concurrency share this process may report (what it already lowered to; >= its calls in flight). */
  floor: number;
  /** The rate it already lowered to. */
  rateFloor: number;
  demand: number;
  inFlight: number;
  samples: Samples;
  leaseMs: number;
}

export interface ShareAnswer {
  concurrency: number;
  rate: number;
  burst: number;
  /** The fleet-wide concurrency limit now (fixed or learned), or null. */
  limit: number | null;
  /** The fair share computed this time: the next renewal lowers to it first. */
  target: { concurrency: number; rate: number };
  leader: boolean;
  processes: number;
  fleetInFlight: number;
}

interface ShareRow extends RowDataPacket {
  process_id: string;
  concurrency_share: number;
  rate_share: number;
  demand: number;
  in_flight: number;
  samples: Samples | string | null;
}

interface ResourceRow extends RowDataPacket {
  learned_limit: number | null;
  leader_id: string | null;
  leader_live: number | null;
  state: (ControllerState & { seen?: Record<string, number>; at?: number }) | string | null;
  now_ms: number;
}

/** How long a learned limit's state is kept without windows: after it, the controller starts from `min`. */
const STATE_FORGOTTEN_MS = 60_000;

const parse = <T>(v: T | string | null): T | null => (typeof v === 'string' ? (JSON.parse(v) as T) : v);

export async function renewShare(pool: Pool, r: ShareRequest): Promise<ShareAnswer> {
  const conn = await pool.getConnection();
  try {
    await conn.query('INSERT IGNORE INTO sluice_resources (name) VALUES (?)', [r.resource]);
    await conn.beginTransaction();
    const answer = await renewIn(conn, r);
    await conn.commit();
    return answer;
  } catch (err) {
    await conn.rollback().catch(() => {});
    throw err;
  } finally {
    conn.release();
  }
}

async function renewIn(conn: PoolConnection, r: ShareRequest): Promise<ShareAnswer> {
  const [[res]] = await conn.query<ResourceRow[]>(
    'SELECT learned_limit, leader_id, leader_until > NOW(3) AS leader_live, state, UNIX_TIMESTAMP(NOW(3)) * 1000 AS now_ms FROM sluice_resources WHERE name = ? FOR UPDATE',
    [r.resource],
  );
  await conn.query('DELETE FROM sluice_resource_shares WHERE resource = ? AND expires_at <= NOW(3)', [r.resource]);
  const [rows] = await conn.query<ShareRow[]>('SELECT process_id, concurrency_share, rate_share, demand, in_flight, samples FROM sluice_resource_shares WHERE resource = ?', [r.resource]);
  const others = rows.filter((x) => x.process_id !== r.processId);
  // No live row of ours: our lease ended by the database's clock, and what we held may be another's now.
  const held = rows.some((x) => x.process_id === r.processId);
  const floor = held ? r.floor : 0;
  const rateFloor = held ? r.rateFloor : 0;
  const leader = r.concurrency !== null && typeof r.concurrency === 'object' && (res?.leader_live !== 1 || res.leader_id === r.processId);
  const limit = await concurrencyLimit(conn, r, res, others, leader);
  const demands = new Map<string, number>([...others.map((o): [string, number] => [o.process_id, o.demand]), [r.processId, r.demand]]);
  let concurrency = Infinity;
  let target = { concurrency: Infinity, rate: Infinity };
  if (limit !== null) {
    const free = limit - others.reduce((a, o) => a + o.concurrency_share, 0);
    const fair = fairShares(limit, demands, true).get(r.processId) ?? 0;
    concurrency = Math.max(floor, Math.min(fair, free));
    target = { ...target, concurrency: fair };
  }
  let rate = Infinity;
  let burst = 0;
  if (r.rate !== null) {
    const free = r.rate - others.reduce((a, o) => a + o.rate_share, 0);
    const wanting = new Map([...demands].map(([id, d]): [string, number] => [id, d > 0 ? Infinity : 0]));
    const fair = fairShares(r.rate, wanting, false).get(r.processId) ?? 0;
    rate = Math.max(rateFloor, Math.min(fair, free));
    burst = r.rate > 0 ? (r.burst * rate) / r.rate : 0;
    target = { ...target, rate: fair };
  }
  await conn.query(
    `INSERT INTO sluice_resource_shares (resource, process_id, concurrency_share, rate_share, demand, in_flight, samples, expires_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, DATE_ADD(NOW(3), INTERVAL ? MICROSECOND))
     ON DUPLICATE KEY UPDATE concurrency_share = VALUES(concurrency_share), rate_share = VALUES(rate_share), demand = VALUES(demand),
       in_flight = VALUES(in_flight), samples = VALUES(samples), expires_at = VALUES(expires_at), updated_at = NOW(3)`,
    [r.resource, r.processId, Number.isFinite(concurrency) ? concurrency : 0, Number.isFinite(rate) ? rate : 0, r.demand, r.inFlight, JSON.stringify(r.samples), r.leaseMs * 1000],
  );
  await conn.query('UPDATE sluice_resources SET overloads = overloads + ? WHERE name = ?', [r.samples.overloads, r.resource]);
  return { concurrency, rate, burst, limit, target, leader, processes: others.length + 1, fleetInFlight: others.reduce((a, o) => a + o.in_flight, 0) + r.inFlight };
}

/** The concurrency limit now: fixed, or learned (moved by the leader once a window). */
async function concurrencyLimit(conn: PoolConnection, r: ShareRequest, res: ResourceRow | undefined, others: ShareRow[], leader: boolean): Promise<number | null> {
  if (r.concurrency === null) return null;
  if (typeof r.concurrency === 'number') return r.concurrency;
  const bounds = r.concurrency;
  const now = Number(res?.now_ms ?? Date.now());
  const saved = parse(res?.state ?? null);
  if (!leader) return Math.floor(res?.learned_limit ?? bounds.min);
  // A state nobody moved for a while (the resource was idle, or the service may have changed) starts over.
  const fresh = saved === null || saved.at === undefined || now - saved.at > STATE_FORGOTTEN_MS;
  const state: ControllerState & { seen: Record<string, number>; at?: number } = fresh ? { ...initialState(bounds.min, now), seen: {} } : { seen: {}, ...saved };
  if (state.at !== undefined && now - state.at < 900) return Math.floor(state.limit);
  const all = [...others.map((o) => ({ id: o.process_id, s: parse(o.samples) })), { id: r.processId, s: r.samples }];
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
  const demand = others.reduce((a, o) => a + o.demand, 0) + r.demand;
  const next = nextLimit(state, { calls: w.calls, ok: w.ok, overloads: w.overloads, latencyMs: w.ok > 0 ? w.latencySumMs / w.ok : null, demand }, bounds, now);
  const limit = Math.min(bounds.max, Math.max(bounds.min, next.limit));
  await conn.query('UPDATE sluice_resources SET learned_limit = ?, leader_id = ?, leader_until = DATE_ADD(NOW(3), INTERVAL ? MICROSECOND), state = ?, updated_at = NOW(3) WHERE name = ?', [
    limit,
    r.processId,
    r.leaseMs * 1000,
    JSON.stringify({ ...next, limit, seen, at: now }),
    r.resource,
  ]);
  return Math.floor(limit);
}

/** Gives every share of this process back (a clean stop): the others may use it at once. */
export async function releaseShares(pool: Pool, processId: string): Promise<void> {
  await pool.query('DELETE FROM sluice_resource_shares WHERE process_id = ?', [processId]);
  await pool.query('UPDATE sluice_resources SET leader_until = NULL WHERE leader_id = ?', [processId]);
}
