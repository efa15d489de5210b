// A deployment's identity on a shared Kafka cluster. Two deployments (staging and production, two teams) that
// publish to one topic or join one consumer group take each other's tasks, so each ledger claims the topic
// and the group it uses, and refuses to start on one another ledger has claimed.
//
// A claim is an empty consumer group named `sluice-claim.<kind>.<ledger id>.<name>` holding one committed
// offset (0) on the one-partition topic `sluice.claims`, which stays empty: the claim costs the cluster one
// offset row, shows up in no lag alert (its lag is always 0), and needs nothing but the group and topic
// rights sluice already uses. A claim is written when missing (writing one joins the group for a moment, so
// an existing claim is not rewritten at every start); Kafka drops an empty group's offsets after
// offsets.retention.minutes (7 days by default), and the next start of the deployment writes it again.
//
// Two deployments starting at the same moment both claim, both see the other's claim, and both refuse (each
// withdraws its new claim first): never both running. Messages carry their ledger id as well (envelope), so
// even a deployment that never claimed (an older sluice) cannot have its tasks run by the wrong ledger.

import type { Admin } from 'kafkajs';
import { groupIdOf, type PipelineConfig, type SluiceConfig } from '../core/config.js';
import { KafkaError } from '../core/errors.js';
import { withRetries } from '../core/retry.js';
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

/** The names a pipeline uses on Kafka: its topic and its fetchers' consumer group. */
export function pipelineClaims(config: SluiceConfig, name: string, pipeline: Pick<PipelineConfig, 'topic'>): Claim[] {
  return [
    { kind: 'topic', name: pipeline.topic, setting: `pipelines.${name}.topic` },
    { kind: 'group', name: groupIdOf(config, name), setting: 'fetcher.groupId (SLUICE_FETCH_GROUP_ID)' },
  ];
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

/**
 * kafkajs's listGroups asks every broker in the metadata once, without retries: a broker that died and is not
 * fenced yet (KRaft: broker.session.timeout.ms, 9 s) fails it. Retried for longer than that.
 */
function listGroups(admin: Admin): ReturnType<Admin['listGroups']> {
  return withRetries(() => admin.listGroups(), { maxAttempts: 10, initialDelayMs: 500, maxDelayMs: 5000, jitter: 'none' }, { retriable: (err) => err.name !== 'KafkaJSSASLAuthenticationError' });
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

/** One line: the first name taken (in the order claimed: the topic before the group), and every setting to change. */
function refusal(found: Map<Claim, string[]>, claims: readonly Claim[], ledger: string): KafkaError {
  const taken = claims.filter((c) => found.has(c));
  const claim = taken[0]!;
  const also = taken.slice(1).map((c) => ` (its ${c.kind} '${c.name}' too)`).join('');
  return new KafkaError('KAFKA_OTHER_LEDGER', `Kafka ${claim.kind} '${claim.name}' is used by another deployment (ledger ${found.get(claim)!.join(', ')}; this one is ledger ${ledger})${also}`, {
    hint:
      `give this deployment its own name: set ${taken.map((c) => c.setting).join(' and ')} (each database needs its own topic and consumer group); ` +
      `if ledger ${found.get(claim)![0]} is gone for good (a dropped database), free the name: kafka-consumer-groups.sh --delete --group ${claimGroupId(claim.kind, found.get(claim)![0]!, claim.name)}`,
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
 * kafkajs writes a group's offset by joining it briefly, so two processes of one ledger that claim the same
 * name at once (produce and fetch, fetchers on several machines) can find the group mid-join: that is
 * retried after a short random pause, and a claim that exists afterwards was written by the other one.
 */
async function writeClaim(admin: Admin, groupId: string): Promise<void> {
  const write = () => admin.setOffsets({ groupId, topic: CLAIMS_TOPIC, partitions: [{ partition: 0, offset: '0' }] });
  try {
    await withRetries(write, { maxAttempts: 5, initialDelayMs: 300, maxDelayMs: 3000, jitter: 'full' }, { retriable: () => true });
  } catch (err) {
    if (!(await listGroups(admin)).groups.some((g) => g.groupId === groupId)) throw err;
  }
}

/**
 * Claims the names for this ledger, or throws KAFKA_OTHER_LEDGER (exit 2) naming the first one another
 * ledger holds. With `check` only, claims nothing (doctor).
 */
export async function claimNames(admin: Admin, ledger: string, claims: readonly Claim[], log: Logger, opts: { check?: boolean } = {}): Promise<void> {
  const before = await foreignClaims(admin, ledger, claims);
  if (before.size > 0) throw refusal(before, claims, ledger);
  if (opts.check === true) return;
  const existing = new Set((await listGroups(admin)).groups.map((g) => g.groupId));
  const made = claims.map((c) => claimGroupId(c.kind, ledger, c.name)).filter((g) => !existing.has(g));
  if (made.length === 0) return;
  await ensureClaimsTopic(admin);
  for (const groupId of made) await writeClaim(admin, groupId);
  const after = await foreignClaims(admin, ledger, claims);
  if (after.size > 0) {
    // A deployment that claimed at the same moment: both withdraw what they just claimed, and both refuse.
    await admin.deleteGroups(made).catch((err: unknown) => log.warn({ err, groups: made }, 'could not withdraw a new claim'));
    throw refusal(after, claims, ledger);
  }
  if (made.length > 0) log.info({ ledger, claims: claims.map((c) => `${c.kind} ${c.name}`) }, 'claimed Kafka names for this ledger');
}
