// What `status` shows of fleet-wide resources: the limit (fixed, or learned and by which process), the calls
// in flight fleet-wide and each live process's share, as of their last renewals, and the overload signals.

import type { RowDataPacket } from 'mysql2/promise';
import type { ResourceConfig } from '../config/config.js';
import type { Pool } from '../db/pool.js';

export interface ResourceStatus {
  name: string;
  /** 'auto' (learned), a number, or null when only the rate is limited. */
  configured: number | 'auto' | null;
  limit: number | null;
  ratePerSecond: number | null;
  inFlight: number;
  overloads: number;
  leader: string | null;
  processes: Array<{ process: string; share: number; rateShare: number; inFlight: number; demand: number }>;
}

export async function resourceStatus(
  pool: Pool,
  resources: Record<string, ResourceConfig>,
  names: readonly string[],
): Promise<ResourceStatus[]> {
  if (names.length === 0) return [];
  const [res] = await pool.query<RowDataPacket[]>(
    'SELECT name, learned_limit, leader_id, leader_until > NOW(3) AS ' +
      'leader_live, overloads FROM sluice_resources WHERE name IN (?)',
    [names],
  );
  const [shares] = await pool.query<RowDataPacket[]>(
    'SELECT resource, process_id, concurrency_share, rate_share, in_flight, ' +
      'demand FROM sluice_resource_shares WHERE resource IN (?) AND expires_at ' +
      '> NOW(3) ORDER BY resource, process_id',
    [names],
  );
  return names.map((name) => {
    const cfg = resources[name];
    const row = res.find((r) => r.name === name);
    const mine = shares.filter((s) => s.resource === name);
    const configured = cfg?.concurrency ?? null;
    return {
      name,
      configured,
      limit:
        configured === 'auto'
          ? row?.learned_limit == null
            ? null
            : Math.floor(Number(row.learned_limit))
          : configured,
      ratePerSecond: cfg?.ratePerSecond ?? null,
      inFlight: mine.reduce((a, s) => a + Number(s.in_flight), 0),
      overloads: Number(row?.overloads ?? 0),
      leader: row?.leader_live === 1 ? String(row.leader_id) : null,
      processes: mine.map((s) => ({
        process: String(s.process_id),
        share: Number(s.concurrency_share),
        rateShare: Number(s.rate_share),
        inFlight: Number(s.in_flight),
        demand: Number(s.demand),
      })),
    };
  });
}
