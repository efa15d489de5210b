// The human-readable status table.

import { replicationWarnings } from '../kafka/health.js';
import type { StatusReport } from './collect.js';
import { asText } from '../core/text.js';

const bar = (frac: number, width = 30): string =>
  `[${'#'.repeat(Math.round(frac * width)).padEnd(width, '-')}] ${(frac * 100).toFixed(1)}%`;

const ago = (s: number): string =>
  s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : `${(s / 3600).toFixed(1)} h ago`;

/** A fetcher's heartbeat `idle` (fetcher/idle-watch.ts): it holds no partition while the topic has lag. */
function idleText(idle: unknown): string {
  if (idle === null || typeof idle !== 'object') return '';
  const r = idle as { lag?: number; members?: Array<{ clientId?: string; host?: string; topics?: string[] }> };
  const others = (r.members ?? [])
    .map((m) => `${m.clientId ?? '?'}@${m.host ?? '?'} on ${(m.topics ?? []).join(',') || '?'}`)
    .join('; ');
  return `, HOLDS NO PARTITION while the topic has lag ${r.lag ?? '?'} (other group members: ${others || 'none'})`;
}

/** Why a fetcher is paused (its heartbeat's `pausedReason`): a full disk says how much is free. */
function pausedText(i: Record<string, unknown>): string {
  if (i.paused !== true) return '';
  if (i.pausedReason !== 'disk full')
    return `, paused: ${typeof i.pausedReason === 'string' ? i.pausedReason : 'high-water mark'}`;
  const free = typeof i.freeBytes === 'number' ? ` (${(i.freeBytes / 1048576).toFixed(0)} MiB free)` : '';
  return `, paused: disk full${free}`;
}

/** The human-readable table. */
function versionMix(v: StatusReport['versions'][number]): string {
  const others = v.others.map((o) => `${o.count} of version ${o.version}`).join(', ');
  const tasks = v.staleTasks === undefined ? '' : `; ${v.staleTasks} done task(s) stale from here`;
  return v.stale === 0 ? `, every milestone current${tasks}` : `; milestones of other versions: ${others}${tasks}`;
}

export function renderStatus(report: StatusReport, out: (line: string) => void): void {
  out(`pipeline ${report.pipeline}  (topic ${report.topic}, source ${report.table})`);
  const est = report.exact
    ? ''
    : ` (estimate: source and results counted ${ago(report.countAgeSeconds)}, ` +
      `plus the ledger since; --exact counts now)`;
  out(
    `  ${bar(report.source === 0 ? 1 : report.done / report.source)}  ` +
      `${report.done} of ${report.source} done${est}, ` +
      `${report.throughput.resultsPerSecond.toFixed(1)}/s ` +
      `recently`,
  );
  out(
    `  pending ${report.pending}   in flight ${report.inFlight}   ` +
      `quarantined ${report.quarantined}   bad messages ${report.badMessages}`,
  );
  if (report.orphans > 0) out(`  results without a source row ${report.orphans} (not counted as done)`);
  if (report.shared > 0)
    out(
      `  ${report.shared} done source row(s) have no result row of their own: they share one with ` +
        `another key (results.mergeKeys)`,
    );
  for (const s of report.stages) {
    const failed =
      s.failedLastMinute === 0
        ? ''
        : `   ${s.failedLastMinute} failed tries in the last minute (${(s.retryRatio * 100).toFixed(1)}% of tries)`;
    out(
      `  stage ${s.stage.padEnd(16)} ${String(s.milestones).padStart(10)} done   ${s.perSecond.toFixed(1)}/s${failed}`,
    );
    const v = report.versions.find((x) => x.stage === s.stage);
    if (v !== undefined && (v.version !== '1' || v.stale > 0 || v.staleTasks !== undefined))
      out(`        version ${v.version}${versionMix(v)}`);
  }
  if (report.staleTasks !== null)
    out(
      report.staleTasks === 0
        ? '  stale tasks 0: every done task is of the current stage versions'
        : `  stale tasks ${report.staleTasks}: run produce --recompute`,
    );
  for (const e of report.errors)
    out(`  error ${e.errorClass.padEnd(20)} x${e.count}  last ${e.lastAt}  e.g. ${e.example}`);
  for (const r of report.resources) {
    const limit =
      r.configured === 'auto'
        ? `learned limit ${r.limit ?? '(not yet)'}`
        : r.configured === null
          ? 'no concurrency limit'
          : `limit ${r.limit}`;
    const rate = r.ratePerSecond === null ? '' : `, ${r.ratePerSecond}/s`;
    const shares = r.processes.map((p) => `${p.process} ${p.inFlight}/${p.share}`).join(', ') || 'no live process';
    out(
      `  resource ${r.name.padEnd(13)} ${limit}${rate}; ` +
        `in flight ${r.inFlight} fleet-wide; overload signals ${r.overloads}; ` +
        `shares (in flight/share): ${shares}`,
    );
  }
  for (const p of report.processes) {
    const i = p.info;
    const what =
      p.role === 'fetcher'
        ? `spooled ${asText(i.spooled ?? 0)}, spool ` +
          `${String((i.depth as { items?: number } | undefined)?.items ?? '?')} item(s)` +
          `${pausedText(i)}${idleText(i.idle)}`
        : `done ${asText(i.done ?? 0)}, in flight ${asText(i.inFlight ?? 0)}`;
    const age = p.stale
      ? `STALE: last heartbeat ${Math.round(p.ageSeconds)} s ago`
      : `heartbeat ${p.ageSeconds.toFixed(0)} s ago`;
    out(`  ${p.role.padEnd(7)} ${p.host} pid ${p.pid}  up since ${p.startedAt}  ${what}  (${age})`);
  }
  const c = report.connections;
  const server =
    c.server === null
      ? 'the server did not say'
      : `${c.server} session(s) of this account on this database, by the server`;
  out(
    `  database connections: ${c.heldByProcesses} held by ${c.processes} ` +
      `live process(es), ${c.heldHere ?? '?'} by this status; ${server}; ` +
      `at most ${c.poolSize} per process (database.poolSize)`,
  );
  const lag = report.lag;
  out(
    `  consumer lag ${
      lag === null
        ? 'unknown (Kafka unreachable)'
        : Object.entries(lag)
            .map(([p, n]) => `p${p}:${n}`)
            .join(' ') || 'none'
    }`,
  );
  renderKafka(report, out);
  const spool = report.spool;
  out(
    `  spool on this machine: ${spool.items} ` +
      `item(s) in ${spool.readySegments} ready + ${spool.claimedSegments} ` +
      `claimed segment(s), ${spool.dir}`,
  );
}

/** The brokers that answer and the topic's replication, with what an operator should act on. */
function renderKafka(report: StatusReport, out: (line: string) => void): void {
  const k = report.kafka;
  if (k === undefined) return;
  if (k === null) return out('  kafka: no seed broker answered');
  const down =
    k.seedsDown.length === 0
      ? 'every seed broker answers'
      : `seed broker(s) DOWN: ${k.seedsDown.map((d) => d.seed).join(', ')}`;
  const t = k.topic;
  const topic =
    t === null
      ? 'topic not created yet'
      : `topic: ${t.partitions} partition(s), ` +
        `replication factor ${t.replicationFactor}, ` +
        `min.insync.replicas ${t.minInsyncReplicas ?? '?'}`;
  out(`  kafka: ${k.brokers} live broker(s), ${down}; ${topic}`);
  if (t !== null)
    for (const w of replicationWarnings(k.brokers, t)) out(`  kafka warning: ${w.replace('<p>', report.pipeline)}`);
}
