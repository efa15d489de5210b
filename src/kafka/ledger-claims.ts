// A deployment's identity on a shared Kafka cluster. Two deployments (staging and production, two teams) that
// publish to one topic or join one consumer group take each other's tasks, so each ledger claims the topic
// and the group it uses, and refuses to start on one another ledger has claimed.
//
// A claim is an empty consumer group named `sluice-claim.<kind>.<ledger id>.<name>` holding one committed
// offset (0) on the one-partition topic `sluice.claims`, which stays empty: the claim costs the cluster one
// offset row, shows up in no lag alert (its lag is always 0), and needs nothing but the group and topic
// rights sluice already uses. Claims are refreshed at every start; Kafka drops an empty group's offsets after
// offsets.retention.minutes (7 days by default), so a deployment gone for longer frees its names.
//
// Two deployments starting at the same moment both claim, both see the other's claim, and both refuse (each
// withdraws its new claim first): never both running. Messages carry their ledger id as well (envelope), so
// even a deployment that never claimed (an older sluice) cannot have its tasks run by the wrong ledger.

import type { Admin } from 'kafkajs';
import { KafkaError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';

export const CLAIMS_TOPIC = 'sluice.claims';
const PREFIX = 'sluice-claim';
const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export type ClaimKind = 'topic' | 'group';

export interface Claim {
  kind: ClaimKind;
  name: string;
  /** The setting that gives a pipeline another name of this kind (for the refusal's hint). */
  setting: string;
}

export function claimGroupId(kind: ClaimKind, ledger: string, name: string): string {
  return `${PREFIX}.${kind}.${ledger}.${name}`;
}

/** The claim a group id stands for, or null when it is not a claim. */
export function parseClaim(groupId: string): { kind: ClaimKind; ledger: string; name: string } | null {
  for (const kind of ['topic', 'group'] as const) {
    const head = `${PREFIX}.${kind}.`;
    if (!groupId.startsWith(head)) continue;
    const ledger = groupId.slice(head.length, head.length + 36);
    if (!UUID_TEXT.test(ledger) || groupId[head.length + 36] !== '.') return null;
    return { kind, ledger, name: groupId.slice(head.length + 37) };
  }
  return null;
}

/** Other ledgers' claims on these names, by claim. */
async function foreignClaims(admin: Admin, ledger: string, claims: readonly Claim[]): Promise<Map<Claim, string[]>> {
  const { groups } = await admin.listGroups();
  const found = new Map<Claim, string[]>();
  for (const g of groups) {
    const c = parseClaim(g.groupId);
    if (c === null || c.ledger === ledger) continue;
    const mine = claims.find((x) => x.kind === c.kind && x.name === c.name);
    if (mine !== undefined) found.set(mine, [...(found.get(mine) ?? []), c.ledger]);
  }
  return found;
}

function refusal(found: Map<Claim, string[]>, ledger: string): KafkaError {
  const [claim, others] = [...found.entries()][0]!;
  return new KafkaError('KAFKA_OTHER_LEDGER', `Kafka ${claim.kind} '${claim.name}' is used by another deployment (ledger ${others.join(', ')}; this one is ledger ${ledger})`, {
    hint: `give this deployment its own name: set ${claim.setting} (each database needs its own topic and consumer group)`,
  });
}

async function ensureClaimsTopic(admin: Admin): Promise<void> {
  if ((await admin.listTopics()).includes(CLAIMS_TOPIC)) return;
  try {
    await admin.createTopics({ topics: [{ topic: CLAIMS_TOPIC, numPartitions: 1 }], waitForLeaders: true });
  } catch (err) {
    // Another deployment created it in between.
    if (!(await admin.listTopics()).includes(CLAIMS_TOPIC)) throw err;
  }
}

/**
 * Claims the names for this ledger, or throws KAFKA_OTHER_LEDGER (exit 2) naming the first one another
 * ledger holds. With `check` only, claims nothing (doctor).
 */
export async function claimNames(admin: Admin, ledger: string, claims: readonly Claim[], log: Logger, opts: { check?: boolean } = {}): Promise<void> {
  const before = await foreignClaims(admin, ledger, claims);
  if (before.size > 0) throw refusal(before, ledger);
  if (opts.check === true) return;
  await ensureClaimsTopic(admin);
  const existing = new Set((await admin.listGroups()).groups.map((g) => g.groupId));
  const made: string[] = [];
  for (const c of claims) {
    const groupId = claimGroupId(c.kind, ledger, c.name);
    if (!existing.has(groupId)) made.push(groupId);
    await admin.setOffsets({ groupId, topic: CLAIMS_TOPIC, partitions: [{ partition: 0, offset: '0' }] });
  }
  const after = await foreignClaims(admin, ledger, claims);
  if (after.size > 0) {
    // A deployment that claimed at the same moment: both withdraw what they just claimed, and both refuse.
    await admin.deleteGroups(made).catch((err: unknown) => log.warn({ err, groups: made }, 'could not withdraw a new claim'));
    throw refusal(after, ledger);
  }
  if (made.length > 0) log.info({ ledger, claims: claims.map((c) => `${c.kind} ${c.name}`) }, 'claimed Kafka names for this ledger');
}
