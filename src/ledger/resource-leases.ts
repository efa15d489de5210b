// The fleet-wide share of one resource for one process, renewed in one short transaction (about once a
// second per process and resource; never per call). The resource's row is locked first, so renewals of one
// resource run one at a time and each sees every other share:
//   1. shares whose lease ended by the database's clock are deleted: they count for nothing;
//   2. the caller's `decide` (resources/share-decision.ts) computes this process's share from the live rows;
//   3. the share, and a learned limit when the leader moved it, are written in the same transaction.
// This file holds the SQL only; what a fair share is lives with the resources.

import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import type { Pool } from '../db/pool.js';

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

/** Another live process's share, as its last renewal wrote it. */
export interface OtherShare {
  processId: string;
  concurrencyShare: number;
  rateShare: number;
  demand: number;
  inFlight: number;
  samples: Samples | null;
}

/** What the transaction read, for `decide`. */
export interface LeaseRows {
  learnedLimit: number | null;
  /** Whether another process holds the leader's lease now. */
  otherLeader: boolean;
  /** The learned limit's saved state (JSON as the leader wrote it), or null. */
  state: unknown;
  /** The database's clock, ms. */
  nowMs: number;
  others: OtherShare[];
  /** Whether this process still had a live share (false: its lease ended and what it held may be another's). */
  held: boolean;
}

export interface LeaseDecision {
  answer: ShareAnswer;
  /** The learned limit and its state to save, when this process led and moved it; null otherwise. */
  learned: { limit: number; state: unknown } | null;
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
  state: unknown;
  now_ms: number;
}

const parse = <T>(v: T | string | null): T | null => (typeof v === 'string' ? (JSON.parse(v) as T) : v);
const finite = (n: number): number => (Number.isFinite(n) ? n : 0);

export async function renewShare(
  pool: Pool,
  r: ShareRequest,
  decide: (r: ShareRequest, rows: LeaseRows) => LeaseDecision,
): Promise<ShareAnswer> {
  const conn = await pool.getConnection();
  try {
    await conn.query('INSERT IGNORE INTO sluice_resources (name) VALUES (?)', [r.resource]);
    await conn.beginTransaction();
    const answer = await renewIn(conn, r, decide);
    await conn.commit();
    return answer;
  } catch (err) {
    await conn.rollback().catch(() => {});
    throw err;
  } finally {
    conn.release();
  }
}

async function readRows(conn: PoolConnection, r: ShareRequest): Promise<LeaseRows> {
  const [[res]] = await conn.query<ResourceRow[]>(
    'SELECT learned_limit, leader_id, leader_until > NOW(3) AS leader_live, ' +
      'state, UNIX_TIMESTAMP(NOW(3)) * 1000 AS now_ms FROM sluice_resources ' +
      'WHERE name = ? FOR UPDATE',
    [r.resource],
  );
  await conn.query('DELETE FROM sluice_resource_shares WHERE resource = ? AND expires_at <= NOW(3)', [r.resource]);
  const [rows] = await conn.query<ShareRow[]>(
    'SELECT process_id, concurrency_share, rate_share, demand, in_flight, ' +
      'samples FROM sluice_resource_shares WHERE resource = ?',
    [r.resource],
  );
  const others = rows
    .filter((x) => x.process_id !== r.processId)
    .map((x) => ({
      processId: x.process_id,
      concurrencyShare: x.concurrency_share,
      rateShare: x.rate_share,
      demand: x.demand,
      inFlight: x.in_flight,
      samples: parse(x.samples),
    }));
  return {
    learnedLimit: res?.learned_limit ?? null,
    otherLeader: res?.leader_live === 1 && res.leader_id !== r.processId,
    state: parse(res?.state ?? null),
    nowMs: Number(res?.now_ms ?? Date.now()),
    others,
    held: rows.some((x) => x.process_id === r.processId),
  };
}

async function renewIn(
  conn: PoolConnection,
  r: ShareRequest,
  decide: (r: ShareRequest, rows: LeaseRows) => LeaseDecision,
): Promise<ShareAnswer> {
  const { answer, learned } = decide(r, await readRows(conn, r));
  if (learned !== null) {
    await conn.query(
      'UPDATE sluice_resources SET learned_limit = ?, leader_id = ?, ' +
        'leader_until = DATE_ADD(NOW(3), INTERVAL ? MICROSECOND), state = ?, ' +
        'updated_at = NOW(3) WHERE name = ?',
      [learned.limit, r.processId, r.leaseMs * 1000, JSON.stringify(learned.state), r.resource],
    );
  }
  await conn.query(
    `INSERT INTO sluice_resource_shares (resource, process_id, ` +
      `concurrency_share, rate_share, demand, in_flight, samples, expires_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, DATE_ADD(NOW(3), INTERVAL ? ` +
      `MICROSECOND))
     ON DUPLICATE KEY UPDATE concurrency_share = ` +
      `VALUES(concurrency_share), rate_share = VALUES(rate_share), demand = ` +
      `VALUES(demand),
       in_flight = VALUES(in_flight), samples = VALUES(samples), ` +
      `expires_at = VALUES(expires_at), updated_at = NOW(3)`,
    [
      r.resource,
      r.processId,
      finite(answer.concurrency),
      finite(answer.rate),
      r.demand,
      r.inFlight,
      JSON.stringify(r.samples),
      r.leaseMs * 1000,
    ],
  );
  await conn.query('UPDATE sluice_resources SET overloads = overloads + ? WHERE name = ?', [
    r.samples.overloads,
    r.resource,
  ]);
  return answer;
}

/** Gives every share of this process back (a clean stop): the others may use it at once. */
export async function releaseShares(pool: Pool, processId: string): Promise<void> {
  await pool.query('DELETE FROM sluice_resource_shares WHERE process_id = ?', [processId]);
  await pool.query('UPDATE sluice_resources SET leader_until = NULL WHERE leader_id = ?', [processId]);
}
