// End-to-end harness: a source table in the test's own database, a config file with the test's stages,
// and sluice's real commands (produce, fetch, work, status) as separate OS processes, as on real machines.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { silentLogger } from '../../src/core/logger.js';
import { migrate } from '../../src/db/migrate.js';
import { cliEnv } from './fixtures.js';
import { ROOT, runCli, type CliResult } from './cli.js';
import { dbConfig, randomName } from './db.js';
import { BROKERS } from './kafka.js';
import { createTopic } from './spool.js';

export interface Proc {
  readonly label: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  /** Everything it wrote to stderr (its log lines). */
  log(): string;
}

export interface Counts {
  results: number;
  distinctResults: number;
  milestones: number;
  quarantined: number;
  attempts: number;
}

export interface E2E {
  name: string;
  topic: string;
  dir: string;
  db: Connection;
  env: Record<string, string>;
  /**
   * `sluice <command> --pipeline <name> ...args` in its own process (the dashboard serves every pipeline: no
   * --pipeline).
   */
  start(
    command: 'fetch' | 'work' | 'run' | 'dashboard' | 'produce',
    args?: string[],
    env?: Record<string, string>,
  ): Proc;
  /** Runs a command to its end (produce, status, ...). */
  cli(command: string, args?: string[], env?: Record<string, string>): Promise<CliResult>;
  counts(): Promise<Counts>;
  /** Source keys without a result, and results whose key is not in the source (both must end empty). */
  mismatches(): Promise<{ missing: number; extra: number }>;
  /** A new connection for the test's own queries (after the test restarted the database). */
  reconnect(): Promise<void>;
  /** SIGTERM every process still running and wait for them; returns their exit codes. */
  stopAll(): Promise<Array<number | null>>;
  close(): Promise<void>;
}

export interface E2EOptions {
  url: string;
  rows: number;
  /** JavaScript source of the pipeline's `stages` array, evaluated in the config file. */
  stages: string;
  partitions?: number;
  brokers?: string[];
  /** Extra top-level config, merged over the harness's (JSON). */
  config?: Record<string, unknown>;
  /** A result table of the user's: its columns (created as `e2e_results`) and the pipeline's `results` (JS source). */
  results?: { columns: string; config: string };
}

export async function startE2E(opts: E2EOptions): Promise<E2E> {
  const name = randomName('e2e');
  const topic = randomName('sluice-e2e');
  const brokers = opts.brokers ?? BROKERS;
  const dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-'));
  mkdirSync(join(dir, 'logs'));
  await migrate(dbConfig(opts.url), silentLogger());
  const db = await mysql.createConnection(opts.url);
  await db.query('CREATE TABLE e2e_source (id BIGINT PRIMARY KEY, body VARCHAR(200) NOT NULL)');
  await db.query(`INSERT INTO e2e_source SELECT seq, CONCAT('document ', seq) FROM seq_1_to_${opts.rows}`);
  if (opts.results !== undefined) await db.query(`CREATE TABLE e2e_results (${opts.results.columns})`);
  await createTopic(topic, opts.partitions ?? 4, brokers);
  const base = {
    fetcher: { groupId: randomName('g'), statsIntervalMs: 1000, restartBackoffMs: 200, sessionTimeoutMs: 10_000 },
    spool: { leaseMs: 3000 },
    worker: { pollMs: 20, shutdownGraceMs: 2000 },
    producer: { progressIntervalMs: 1000 },
    ...opts.config,
  };
  const configFile = join(dir, 'sluice.config.ts');
  writeFileSync(
    configFile,
    `const base = ${JSON.stringify(base)};
export default { ...base, pipelines: { ${name}: { topic: ${JSON.stringify(topic)}, partitions: ${opts.partitions ?? 4},
  source: { table: 'e2e_source', key: 'id', columns: ['body'] },${
    opts.results === undefined ? '' : `\n  results: ${opts.results.config},`
  }
  stages: ${opts.stages} } } };\n`,
  );
  const env = {
    DATABASE_URL: opts.url,
    SLUICE_KAFKA_BROKERS: brokers.join(','),
    SLUICE_CONFIG: configFile,
    SLUICE_LOG_LEVEL: 'info',
    SLUICE_LOG_PRETTY: 'false',
  };
  const procs = new Set<Proc>();
  let seq = 0;

  const start = (
    command: 'fetch' | 'work' | 'run' | 'dashboard' | 'produce',
    args: string[] = [],
    extraEnv: Record<string, string> = {},
  ): Proc => {
    const label = `${command}-${++seq}`;
    const logFile = join(dir, 'logs', `${label}.log`);
    const fd = openSync(logFile, 'w');
    const child = spawn(
      process.execPath,
      [
        '--import',
        import.meta.resolve('tsx'),
        join(ROOT, 'src/cli.ts'),
        command,
        ...(command === 'dashboard' ? [] : ['--pipeline', name]),
        ...args,
      ],
      {
        cwd: dir,
        env: cliEnv({ ...env, ...extraEnv }),
        stdio: ['ignore', 'ignore', fd],
      },
    );
    const proc: Proc = {
      label,
      child,
      exited: new Promise((r) => child.once('exit', (code, signal) => r(signal === null ? code : null))),
      log: () => readFileSync(logFile, 'utf8'),
    };
    procs.add(proc);
    void proc.exited.then(() => procs.delete(proc));
    return proc;
  };

  const count = async (sql: string): Promise<number> => {
    const [rows] = await api.db.query<RowDataPacket[]>(sql, [name]);
    return Number(rows[0]?.n ?? 0);
  };

  const api: E2E = {
    name,
    topic,
    dir,
    db,
    env,
    start,
    cli: (command, args = [], extraEnv = {}) =>
      runCli([command, '--pipeline', name, ...args], { env: { ...env, ...extraEnv }, cwd: dir }),
    counts: async () => ({
      results: await count('SELECT COUNT(*) AS n FROM sluice_results WHERE pipeline = ?'),
      distinctResults: await count('SELECT COUNT(DISTINCT task_key) AS n FROM sluice_results WHERE pipeline = ?'),
      milestones: await count('SELECT COUNT(*) AS n FROM sluice_milestones WHERE pipeline = ?'),
      quarantined: await count('SELECT COUNT(*) AS n FROM sluice_dead_tasks WHERE pipeline = ?'),
      attempts: await count('SELECT COUNT(*) AS n FROM sluice_attempts WHERE pipeline = ?'),
    }),
    mismatches: async () => ({
      missing: await count(
        `SELECT COUNT(*) AS n FROM e2e_source s LEFT JOIN sluice_results r ON ` +
          `r.pipeline = ? AND r.task_key = CONVERT(s.id USING utf8mb4) WHERE ` +
          `r.task_key IS NULL`,
      ),
      extra: await count(
        `SELECT COUNT(*) AS n FROM sluice_results r LEFT JOIN e2e_source s ON ` +
          `r.task_key = CONVERT(s.id USING utf8mb4) WHERE r.pipeline = ? AND s.id IS NULL`,
      ),
    }),
    stopAll: async () => {
      const running = [...procs];
      for (const p of running) p.child.kill('SIGTERM');
      return Promise.all(running.map((p) => p.exited));
    },
    reconnect: async () => {
      await api.db.end().catch(() => {});
      api.db = await mysql.createConnection(opts.url);
    },
    close: async () => {
      for (const p of procs) p.child.kill('SIGKILL');
      await api.db.end().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return api;
}
