// What the harness sets up and reads around a side's processes, the same for any version of sluice: databases
// (made, copied from a template, dropped), the source table, a config file, Kafka topics and consumer-group
// offsets, and the server's counters. Only tables and columns every version has are read (sluice_results,
// sluice_dispatches).
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { withDatabase } from '../../src/db/database-url.js';

export const PIPELINE = 'bench';
export const SOURCE_TABLE = 'bench_source';

export interface Fixture {
  server: Connection;
  admin: Admin;
  serverUrl: URL;
  brokers: string;
  /** This invocation's prefix of every database (`<tag>_...`), topic and group (`<names>-...`) it makes. */
  tag: string;
  names: string;
  close(): Promise<void>;
}

export async function openFixture(serverUrl: string, brokers: string): Promise<Fixture> {
  const url = new URL(serverUrl);
  const server = await mysql.createConnection({ uri: serverUrl });
  const admin = new Kafka({
    clientId: 'sluice-bench-compare',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  const id = randomBytes(3).toString('hex');
  return {
    server,
    admin,
    serverUrl: url,
    brokers,
    tag: `sluice_cmp_${id}`,
    names: `sluice-cmp-${id}`,
    async close() {
      await admin.disconnect().catch(() => {});
      await server.end().catch(() => {});
    },
  };
}

export const suffix = (): string => randomBytes(4).toString('hex');

export const databaseUrl = (f: Fixture, name: string): string => withDatabase(f.serverUrl.toString(), name);

export async function recreateDatabase(f: Fixture, name: string): Promise<void> {
  await f.server.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await f.server.query(`CREATE DATABASE \`${name}\``);
}

/** Drops every database, topic and consumer group this invocation made, whatever state it stopped in. */
export async function sweep(f: Fixture): Promise<void> {
  const [dbs] = await f.server.query<RowDataPacket[]>(
    'SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?',
    [`${f.tag}\\_%`],
  );
  for (const { s } of dbs) await f.server.query(`DROP DATABASE IF EXISTS \`${s}\``);
  const topics = (await f.admin.listTopics().catch(() => [] as string[])).filter((t) => t.startsWith(f.names));
  if (topics.length > 0) await f.admin.deleteTopics({ topics, timeout: 10_000 }).catch(() => {});
  const groups = (await f.admin.listGroups().catch(() => ({ groups: [] as Array<{ groupId: string }> }))).groups
    .map((g) => g.groupId)
    .filter((g) => g.startsWith(f.names));
  if (groups.length > 0) await f.admin.deleteGroups(groups).catch(() => {});
}

/** Every table of `from`, rows included, into a fresh `to`: a run starts from exactly the template's state. */
export async function copyDatabase(f: Fixture, from: string, to: string): Promise<void> {
  await recreateDatabase(f, to);
  const [tables] = await f.server.query<RowDataPacket[]>(
    "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'",
    [from],
  );
  for (const { t } of tables) {
    await f.server.query(`CREATE TABLE \`${to}\`.\`${t}\` LIKE \`${from}\`.\`${t}\``);
    await f.server.query(`INSERT INTO \`${to}\`.\`${t}\` SELECT * FROM \`${from}\`.\`${t}\``);
  }
}

/** n documents of ~300 bytes, keys 1..n (the sequence engine makes them in one statement). */
export async function seedSource(f: Fixture, db: string, n: number): Promise<void> {
  await f.server.query(
    `CREATE TABLE \`${db}\`.${SOURCE_TABLE} (id BIGINT PRIMARY KEY, title VARCHAR(100) NOT NULL, body VARCHAR(400) ` +
      `NOT NULL)`,
  );
  await f.server.query(
    `INSERT INTO \`${db}\`.${SOURCE_TABLE} SELECT seq, CONCAT('Document ', seq), CONCAT(REPEAT('lorem ipsum ', ` +
      `24), seq) FROM seq_1_to_${n}`,
  );
}

export interface Span {
  count: number;
  /** Seconds between the first and the last timestamp. */
  seconds: number;
}

/** Results written for the bench pipeline, and the time from the first to the last one finished. */
export async function resultSpan(f: Fixture, db: string): Promise<Span> {
  return span(
    f,
    `SELECT COUNT(*) AS n, TIMESTAMPDIFF(MICROSECOND, MIN(finished_at), ` +
      `MAX(finished_at)) AS us FROM \`${db}\`.sluice_results WHERE pipeline = ?`,
  );
}

/** Dispatches recorded by produce, and the time from the first to the last one. */
export async function dispatchSpan(f: Fixture, db: string): Promise<Span> {
  return span(
    f,
    `SELECT COUNT(*) AS n, TIMESTAMPDIFF(MICROSECOND, MIN(dispatched_at), ` +
      `MAX(dispatched_at)) AS us FROM \`${db}\`.sluice_dispatches WHERE pipeline = ?`,
  );
}

async function span(f: Fixture, sql: string): Promise<Span> {
  const [[row]] = await f.server.query<RowDataPacket[]>(sql, [PIPELINE]);
  return { count: Number(row?.n ?? 0), seconds: Number(row?.us ?? 0) / 1e6 };
}

export async function resultCount(f: Fixture, db: string): Promise<number> {
  const [[row]] = await f.server.query<RowDataPacket[]>(
    `SELECT COUNT(*) AS n FROM \`${db}\`.sluice_results WHERE pipeline = ?`,
    [PIPELINE],
  );
  return Number(row?.n ?? 0);
}

export interface StageSpec {
  name: string;
  concurrency: number;
  /** Milliseconds each call awaits; 0 is a no-op. */
  waitMs: number;
}

export interface ConfigSpec {
  databaseUrl: string;
  brokers: string;
  spoolDir: string;
  topic: string;
  groupId: string;
  stage: StageSpec;
  /** The spool takes a whole topic without pausing (its high-water marks far above it): fetch and work templates. */
  holdAll?: boolean;
  maxInFlight?: number;
}

/** A config file every version reads: plain JavaScript, settings that have existed since the first release. */
export function writeConfig(file: string, c: ConfigSpec): void {
  const marks =
    c.holdAll === true
      ? ', highWaterItems: 1e8, lowWaterItems: 5e7, highWaterBytes: 2 ** 40, lowWaterBytes: 2 ** 39'
      : '';
  const worker = c.maxInFlight === undefined ? '' : `\n  worker: { maxInFlight: ${c.maxInFlight} },`;
  const run =
    c.stage.waitMs === 0
      ? 'async () => null'
      : `() => new Promise((resolve) => setTimeout(() => resolve(null), ${c.stage.waitMs}))`;
  writeFileSync(
    file,
    `// Written by bench:compare for one run.
export default {
  database: { url: ${JSON.stringify(c.databaseUrl)} },
  kafka: { brokers: ${JSON.stringify(c.brokers.split(','))} },
  spool: { dir: ${JSON.stringify(c.spoolDir)}${marks} },${worker}
  fetcher: { groupId: ${JSON.stringify(c.groupId)} },
  pipelines: {
    ${PIPELINE}: {
      topic: ${JSON.stringify(c.topic)},
      partitions: 6,
      source: { table: '${SOURCE_TABLE}', key: 'id', columns: ['title', 'body'] },
      stages: [{ name: ${JSON.stringify(c.stage.name)}, concurrency: ${c.stage.concurrency}, run: ${run} }],
    },
  },
};
`,
  );
}

/** The consumer group's committed offsets on the topic, summed over partitions. */
export async function committed(f: Fixture, groupId: string, topic: string): Promise<number> {
  const offsets = await f.admin.fetchOffsets({ groupId, topics: [topic] });
  return offsets.flatMap((t) => t.partitions).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
}

export async function deleteTopic(f: Fixture, topic: string): Promise<void> {
  await f.admin.deleteTopics({ topics: [topic], timeout: 10_000 }).catch(() => {});
}

/** The server's counters a run is charged with (their deltas over a run, per task). */
export const COUNTERS = [
  'Questions',
  'Com_select',
  'Com_insert',
  'Com_update',
  'Com_delete',
  'Com_commit',
  'Com_stmt_execute',
  'Rows_read',
  'Handler_write',
  'Handler_update',
  'Innodb_data_fsyncs',
  'Bytes_received',
] as const;
export type Counters = Record<(typeof COUNTERS)[number], number> & { dbCpuSeconds: number };

/**
 * The server's counters now, less what this harness's own connection has sent so far (its polls and these
 * reads), so that a delta is the measured processes' alone. The server's CPU cannot be split that way: the
 * harness's polls (e2e) are in it.
 */
export async function serverCounters(f: Fixture): Promise<Counters> {
  const names = COUNTERS.map(() => '?').join(', ');
  const [global] = await f.server.query<RowDataPacket[]>(`SHOW GLOBAL STATUS WHERE Variable_name IN (${names})`, [
    ...COUNTERS,
  ]);
  const [session] = await f.server.query<RowDataPacket[]>(`SHOW SESSION STATUS WHERE Variable_name IN (${names})`, [
    ...COUNTERS,
  ]);
  const own = new Map(session.map((r) => [r.Variable_name as string, Number(r.Value)]));
  const out = { dbCpuSeconds: serverCpuSeconds() } as Counters;
  // InnoDB's counters have no session value (SHOW SESSION STATUS repeats the global one): nothing to subtract.
  for (const r of global) {
    const name = r.Variable_name as (typeof COUNTERS)[number];
    out[name] = Number(r.Value) - (name.startsWith('Innodb_') ? 0 : (own.get(name) ?? 0));
  }
  return out;
}

export function counterDelta(a: Counters, b: Counters): Counters {
  const out = {} as Counters;
  for (const k of [...COUNTERS, 'dbCpuSeconds'] as const) out[k] = (b[k] ?? 0) - (a[k] ?? 0);
  return out;
}

/** CPU seconds the database server has used (user + system), from /proc; NaN where it cannot be read. */
function serverCpuSeconds(): number {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (comm !== 'mariadbd' && comm !== 'mysqld') continue;
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return (Number(fields[11]) + Number(fields[12])) / 100;
    } catch {
      // a process that ended while the list was read
    }
  }
  return NaN;
}

/**
 * Waits until InnoDB has written out the dirty pages and the redo log a template copy (or the run before) left,
 * so that no run pays for the one before it: with MariaDB's defaults (128 MB buffer pool, 96 MB redo log) a
 * 100k-task copy leaves half the pool dirty and the checkpoint age near the point where commits wait for
 * flushing. The page cleaner is asked to flush everything meanwhile (the server's own settings are put back).
 */
export async function settle(f: Fixture, signal?: AbortSignal, timeoutMs = 120_000): Promise<number> {
  const t0 = performance.now();
  const [[saved]] = await f.server.query<RowDataPacket[]>(
    'SELECT @@innodb_max_dirty_pages_pct AS pct, ' +
      '@@innodb_max_dirty_pages_pct_lwm AS lwm, @@innodb_log_file_size AS logSize',
  );
  try {
    await f.server.query('SET GLOBAL innodb_max_dirty_pages_pct_lwm = 0.001, GLOBAL innodb_max_dirty_pages_pct = 0');
    for (;;) {
      const [rows] = await f.server.query<RowDataPacket[]>(
        'SHOW GLOBAL STATUS WHERE Variable_name IN ' +
          "('Innodb_buffer_pool_pages_dirty', 'Innodb_buffer_pool_pages_total', " +
          "'Innodb_checkpoint_age')",
      );
      const v = Object.fromEntries(rows.map((r) => [r.Variable_name as string, Number(r.Value)]));
      const clean =
        (v.Innodb_buffer_pool_pages_dirty ?? 0) <= 0.01 * (v.Innodb_buffer_pool_pages_total ?? 0) &&
        (v.Innodb_checkpoint_age ?? 0) <= 0.05 * Number(saved?.logSize);
      if (clean || signal?.aborted === true || performance.now() - t0 > timeoutMs) break;
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await f.server.query('SET GLOBAL innodb_max_dirty_pages_pct = ?, GLOBAL innodb_max_dirty_pages_pct_lwm = ?', [
      saved?.pct,
      saved?.lwm,
    ]);
  }
  return (performance.now() - t0) / 1000;
}
