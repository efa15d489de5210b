// A fetcher that holds no partition while its topic has work idles without a word: kafkajs's group leader
// assigns only the topics *it* subscribes to, so one member of the group subscribed to another topic (another
// deployment, an old consumer with the same group id) leaves every sluice fetcher with nothing. This watch
// notices it: no partition for longer than a session timeout, and lag on the topic -> one warning naming the
// group's other members and what they subscribe to, and `idle` in the fetcher's heartbeat (status, dashboard).
// States: watching -> closed.

import { AssignerProtocol, type Admin } from 'kafkajs';
import type { Logger } from '../core/logger.js';

export interface GroupMember {
  memberId: string;
  clientId: string;
  host: string;
  /** The topics it subscribes to (from its join metadata); empty when it could not be read. */
  topics: string[];
}

/** What the heartbeat reports while the fetcher holds no partition and the topic has lag. */
export interface IdleReport {
  sinceMs: number;
  lag: number;
  members: GroupMember[];
}

export interface IdleWatchDeps {
  topic: string;
  groupId: string;
  /** How long without a partition is too long: the session timeout, after which a rebalance is over. */
  afterMs: number;
  /** An admin client, connected, for the checks; disconnected after each (see close). */
  admin(): Admin;
  /** Messages on the topic not committed by the group. */
  lag(admin: Admin): Promise<number>;
  log: Logger;
  now?: () => number;
}

export class IdleWatch {
  state: 'watching' | 'closed' = 'watching';
  #report: IdleReport | null = null;
  #noPartitionSince: number;
  #memberId: string | null = null;
  #warned = false;
  #checking: Promise<void> | null = null;
  #admin: Admin | null = null;
  #told = false;
  readonly #d: IdleWatchDeps;
  readonly #now: () => number;
  readonly #timer: NodeJS.Timeout;

  constructor(deps: IdleWatchDeps, checkEveryMs = Math.max(1000, Math.floor(deps.afterMs / 3))) {
    this.#d = deps;
    this.#now = deps.now ?? (() => performance.now());
    // The clock starts at the first join: a join still under way (a broker outage at start) is not idleness.
    this.#noPartitionSince = Number.POSITIVE_INFINITY;
    this.#timer = setInterval(() => void this.check(), checkEveryMs);
    this.#timer.unref();
  }

  /** The group gave this member its partitions (kafkajs GROUP_JOIN). */
  joined(memberId: string, partitions: readonly number[]): void {
    this.#memberId = memberId;
    if (partitions.length > 0) {
      if (this.#warned) this.#d.log.info({ topic: this.#d.topic, partitions }, 'fetcher holds partitions again');
      this.#report = null;
      this.#warned = false;
      this.#noPartitionSince = Number.POSITIVE_INFINITY;
    } else if (!Number.isFinite(this.#noPartitionSince)) {
      this.#noPartitionSince = this.#now();
    }
  }

  /** Null while the fetcher holds a partition, or holds none but the topic has nothing for it. */
  get report(): IdleReport | null {
    return this.#report;
  }

  /** One look: idle long enough and lag on the topic -> report (and warn once). */
  check(): Promise<void> {
    if (this.state === 'closed' || this.#checking !== null) return this.#checking ?? Promise.resolve();
    const idleMs = this.#now() - this.#noPartitionSince;
    if (!(idleMs > this.#d.afterMs)) return Promise.resolve();
    this.#checking = this.#look(idleMs).finally(() => (this.#checking = null));
    return this.#checking;
  }

  async #look(idleMs: number): Promise<void> {
    const admin = (this.#admin = this.#d.admin());
    try {
      await admin.connect();
      const lag = await this.#d.lag(admin);
      const members = lag > 0 ? await othersIn(admin, this.#d.groupId, this.#memberId) : [];
      // Every other member reads this topic too: more fetchers than partitions, which is no fault.
      const foreign = members.filter((m) => !m.topics.includes(this.#d.topic));
      if (lag <= 0 || this.state === 'closed' || foreign.length === 0) {
        if (lag > 0 && !this.#told)
          this.#d.log.info(
            { topic: this.#d.topic, members: members.length },
            'fetcher holds no partition: the group has more fetchers than the topic has partitions',
          );
        this.#told ||= lag > 0;
        this.#report = null;
        return;
      }
      this.#report = { sinceMs: Math.round(idleMs), lag, members };
      if (!this.#warned) {
        this.#warned = true;
        const subscribers = members.map((m) => `${m.clientId}@${m.host} -> ${m.topics.join(',') || '?'}`).join('; ');
        this.#d.log.warn(
          {
            topic: this.#d.topic,
            groupId: this.#d.groupId,
            lag,
            idleSeconds: Math.round(idleMs / 1000),
            members,
            subscribers,
          },
          'fetcher holds no partition while its topic has lag: another member of ' +
            'the consumer group subscribes to other topics (give this pipeline its ' +
            'own fetcher.groupId)',
        );
      }
    } catch (err) {
      this.#d.log.debug({ err }, 'could not check why the fetcher holds no partition');
    } finally {
      this.#admin = null;
      await admin.disconnect().catch(() => {});
    }
  }

  /** Idempotent; a check under way is cut short (its admin disconnected) and waited for. */
  async close(): Promise<void> {
    this.state = 'closed';
    clearInterval(this.#timer);
    await this.#admin?.disconnect().catch(() => {});
    await this.#checking;
  }
}

/** The group's members other than `self`, with the topics their join metadata subscribes to. */
async function othersIn(admin: Admin, groupId: string, self: string | null): Promise<GroupMember[]> {
  const { groups } = await admin.describeGroups([groupId]);
  const members = groups[0]?.members ?? [];
  return members
    .filter((m) => m.memberId !== self)
    .map((m) => {
      let topics: string[] = [];
      try {
        topics = AssignerProtocol.MemberMetadata.decode(m.memberMetadata)?.topics ?? [];
      } catch {
        // Not a consumer-protocol member (kafka-console tools can join with another protocol): topics unknown.
      }
      return { memberId: m.memberId, clientId: m.clientId, host: m.clientHost, topics };
    });
}
