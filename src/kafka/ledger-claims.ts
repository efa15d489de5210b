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

import type { Admin, Kafka } from 'kafkajs';
import type { PipelineConfig } from '../config/config.js';
import { KafkaError } from '../core/errors.js';
import { withRetries } from '../core/retry.js';
import { sleep } from '../core/sleep.js';
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
export function pipelineClaims(pipeline: Pick<PipelineConfig, 'name' | 'topic' | 'groupId'>): Claim[] {
  return [
    { kind: 'topic', name: pipeline.topic, setting: `pipelines.${pipeline.name}.topic` },
    { kind: 'group', name: pipeline.groupId, setting: 'fetcher.groupId (SLUICE_FETCH_GROUP_ID)' },
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
 * Every consumer group of the cluster. kafkajs asks each broker once, without retrying: callers retry (retryKafka).
 */
const listGroups = (admin: Admin): ReturnType<Admin['listGroups']> => admin.listGroups();

/** Other ledgers' claims on these names, by claim. */
async function foreignClaims(admin: Admin, ledger: string, claims: readonly Claim[]): Promise<Map<Claim, string[]>> {
  const { groups } = await listGroups(admin);
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
  const also = taken
    .slice(1)
    .map((c) => ` (its ${c.kind} '${c.name}' too)`)
    .join('');
  return new KafkaError(
    'KAFKA_OTHER_LEDGER',
    `Kafka ${claim.kind} '${claim.name}' is used by another deployment ` +
      `(ledger ${found.get(claim)!.join(', ')}; this one ` +
      `is ledger ${ledger})${also}`,
    {
      hint:
        `give this deployment its own ` +
        `name: set ${taken.map((c) => c.setting).join(' and ')} (each database ` +
        `needs its own topic and consumer group); ` +
        `if ledger ${found.get(claim)![0]} is gone for good (a dropped database), free the name: ` +
        `kafka-consumer-groups.sh --delete --group ${claimGroupId(claim.kind, found.get(claim)![0]!, claim.name)}`,
    },
  );
}

async function ensureClaimsTopic(admin: Admin): Promise<void> {
  if ((await admin.listTopics()).includes(CLAIMS_TOPIC)) return;
  try {
    // Replicated where the cluster allows: with its only replica down, no deployment could write a new claim.
    const brokers = (await admin.describeCluster()).brokers.length;
    await admin.createTopics({
      topics: [{ topic: CLAIMS_TOPIC, numPartitions: 1, replicationFactor: Math.min(3, brokers) }],
      waitForLeaders: true,
    });
  } catch (err) {
    // Another deployment created it in between.
    if (!(await admin.listTopics()).includes(CLAIMS_TOPIC)) throw err;
  }
}

/**
 * Writes one claim: a member joins the claim's group for a moment and commits offset 0 of the claims topic.
 * (kafkajs's admin.setOffsets does the same but then waits out a whole fetch, 5 s.) Two processes of one
 * ledger that claim the same name at once (produce and fetch, fetchers on several machines) can meet in the
 * group's join: that is retried after a short random pause, and a claim that exists afterwards was written
 * by the other one.
 */
async function writeClaim(client: Kafka, admin: Admin, groupId: string): Promise<void> {
  const write = async (): Promise<void> => {
    const consumer = client.consumer({
      groupId,
      sessionTimeout: 10_000,
      maxWaitTimeInMs: 100,
      allowAutoTopicCreation: false,
      retry: { retries: 2 },
    });
    const stop = new AbortController();
    try {
      const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
      await consumer.connect();
      await consumer.subscribe({ topic: CLAIMS_TOPIC, fromBeginning: true });
      await consumer.run({ autoCommit: false, eachBatch: async () => {} });
      await Promise.race([
        joined,
        sleep(30_000, stop.signal).then(() => Promise.reject(new Error(`no join of ${groupId} within 30 s`))),
      ]);
      await consumer.commitOffsets([{ topic: CLAIMS_TOPIC, partition: 0, offset: '0' }]);
    } finally {
      stop.abort();
      await consumer.disconnect().catch(() => {});
    }
  };
  try {
    await withRetries(write, { maxAttempts: 5, initialDelayMs: 300, maxDelayMs: 3000, jitter: 'full' });
  } catch (err) {
    if (!(await listGroups(admin)).groups.some((g) => g.groupId === groupId)) throw err;
  }
}

/**
 * Claims the names for this ledger, or throws KAFKA_OTHER_LEDGER (exit 2) naming the first one another
 * ledger holds. With `check` only, claims nothing (doctor); else `client` writes the missing claims (of the
 * kinds in `write`, default all: produce checks the group but leaves claiming it to the fetchers).
 */
export async function claimNames(
  admin: Admin,
  ledger: string,
  claims: readonly Claim[],
  log: Logger,
  opts: { check?: boolean; client?: Kafka; write?: readonly ClaimKind[] } = {},
): Promise<void> {
  const before = await foreignClaims(admin, ledger, claims);
  if (before.size > 0) throw refusal(before, claims, ledger);
  if (opts.check === true) return;
  const client = opts.client;
  if (client === undefined) throw new TypeError('claimNames: a Kafka client is needed to write claims');
  const existing = new Set((await listGroups(admin)).groups.map((g) => g.groupId));
  const made = claims
    .filter((c) => opts.write?.includes(c.kind) ?? true)
    .map((c) => claimGroupId(c.kind, ledger, c.name))
    .filter((g) => !existing.has(g));
  if (made.length === 0) return;
  await ensureClaimsTopic(admin);
  await Promise.all(made.map((groupId) => writeClaim(client, admin, groupId)));
  const after = await foreignClaims(admin, ledger, claims);
  if (after.size > 0) {
    // A deployment that claimed at the same moment: both withdraw what they just claimed, and both refuse.
    await admin
      .deleteGroups(made)
      .catch((err: unknown) => log.warn({ err, groups: made }, 'could not withdraw a new claim'));
    throw refusal(after, claims, ledger);
  }
  if (made.length > 0)
    log.info({ ledger, claims: claims.map((c) => `${c.kind} ${c.name}`) }, 'claimed Kafka names for this ledger');
}

/** How often a long-running fetcher writes its claims again: well inside Kafka's 7-day offset retention. */
export const CLAIM_REFRESH_MS = 24 * 3600 * 1000;

/**
 * Keeps a running process's claims alive: Kafka drops a claim offsets.retention.minutes after it was written,
 * and a fetcher can run for longer than that. States: running -> closed.
 */
export class ClaimKeeper {
  state: 'running' | 'closed' = 'running';
  readonly #timer: NodeJS.Timeout;
  #refreshing: Promise<void> | null = null;

  constructor(
    private readonly client: Kafka,
    private readonly ledger: string,
    private readonly claims: readonly Claim[],
    private readonly log: Logger,
    everyMs = CLAIM_REFRESH_MS,
  ) {
    this.#timer = setInterval(() => void this.refresh(), everyMs);
    this.#timer.unref();
  }

  /** Writes every claim again; a failure is logged (the next refresh tries again), never thrown. */
  refresh(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    this.#refreshing ??= (async () => {
      const admin = this.client.admin();
      try {
        await admin.connect();
        await ensureClaimsTopic(admin);
        await Promise.all(
          this.claims.map((c) => writeClaim(this.client, admin, claimGroupId(c.kind, this.ledger, c.name))),
        );
        this.log.debug({ claims: this.claims.length }, 'claims refreshed');
      } catch (err) {
        this.log.warn({ err }, 'could not refresh the claims on the topic and group (tried again later)');
      } finally {
        await admin.disconnect().catch(() => {});
        this.#refreshing = null;
      }
    })();
    return this.#refreshing;
  }

  async close(): Promise<void> {
    this.state = 'closed';
    clearInterval(this.#timer);
    await this.#refreshing;
  }
}
