// The fixture layer: every helper that makes something takes the test (or suite) context and registers its
// teardown right there, so a test that fails half way leaves no database, folder, process or client behind.
//   tempDir(t)       a folder, removed after
//   spawnCli(t, ..)  the real CLI in a child process (through tsx), killed after if still running
//   makeConfig(t, ..) a validated config on a fresh, migrated database with its own spool folder and group
//   kafkaAdmin(t)    a connected kafkajs admin, disconnected after
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import mysql, { type Connection } from 'mysql2/promise';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { mergeLayers, type SluiceConfig, type SluiceConfigInput } from '../../src/config/config.js';
import { validateConfig } from '../../src/config/validate.js';
import { silentLogger } from '../../src/core/logger.js';
import { migrate } from '../../src/db/migrate.js';
import { openPool, type Pool } from '../../src/db/pool.js';
import { createIntSource, dbConfig, randomName, testDatabase } from './db.js';
import { BROKERS } from './kafka.js';

/** Anything with `after`: a TestContext, a SuiteContext, or node:test's `after` wrapped as `{ after }`. */
export interface Teardown {
  after(fn: () => unknown): void;
}

/**
 * Teardown for things a whole file (or suite) shares, made in a `before` hook: steps run when the file's tests
 * are over, last made first. (node:test's `after` called inside a `before` would attach to whatever test runs
 * then, and run too early.) Call it at the top level of the file or suite, after its other `after` hooks.
 */
export function fileTeardown(): Teardown {
  const steps: Array<() => unknown> = [];
  after(async () => {
    for (const step of steps.reverse()) await step();
  });
  return { after: (fn) => void steps.push(fn) };
}

export interface FileDatabase {
  url: string;
  /** One connection (multiple statements allowed). */
  db: Connection;
  /** A sluice pool, when `poolSize` was asked for. */
  pool: Pool;
}

/**
 * The database a whole file shares: made fresh (and migrated) before its tests, `ready` hands it over, and
 * it is closed and dropped when the file's tests are over. `intSource` fills a source table 'unused' with
 * keys 1..n (workers run only keys that have a source row).
 */
export function fileDatabase(
  opts: { migrated?: boolean; poolSize?: number; intSource?: number; seed?: (d: FileDatabase) => Promise<void> },
  ready: (d: FileDatabase) => void,
): void {
  const file = fileTeardown();
  before(async () => {
    const url = await testDatabase(file);
    if (opts.migrated !== false) await migrate(dbConfig(url), silentLogger());
    const db = await mysql.createConnection({ uri: url, charset: 'UTF8MB4_UNICODE_CI', multipleStatements: true });
    file.after(() => db.end());
    const pool =
      opts.poolSize === undefined
        ? (null as unknown as Pool)
        : await openPool(dbConfig(url), { poolSize: opts.poolSize });
    if (opts.poolSize !== undefined) file.after(() => pool.end());
    if (opts.intSource !== undefined) await createIntSource(db, 'unused', opts.intSource);
    // In this hook, not another one: node:test runs a file's top-level before hooks at the same time.
    await opts.seed?.({ url, db, pool });
    ready({ url, db, pool });
  });
}

const stacks = new WeakMap<Teardown, Array<() => unknown>>();

/**
 * Registers `fn` to run when the test is over, last registered first (node:test runs `t.after` hooks in the
 * order they were added): what was made last, and may use what was made before it, is closed first.
 */
export function onTeardown(t: Teardown, fn: () => unknown): void {
  let stack = stacks.get(t);
  if (stack === undefined) {
    const steps: Array<() => unknown> = [];
    stack = steps;
    stacks.set(t, steps);
    t.after(async () => {
      for (const step of steps.reverse()) await step();
    });
  }
  stack.push(fn);
}

export function tempDir(t: Teardown, prefix = 'sluice-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onTeardown(t, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The repository's root folder. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'src/cli.ts');
const TSX = import.meta.resolve('tsx');

/**
 * The environment every CLI child gets: JSON logs, and hints in this repository's `npm run` form whatever
 * launched the tests (node --test directly, npm test, CI), so no assertion depends on the launcher.
 */
export function cliEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...(process.env as Record<string, string>),
    SLUICE_LOG_PRETTY: 'false',
    npm_package_name: 'sluice',
    npm_lifecycle_event: 'test',
    ...extra,
  };
}

export interface CliProcess {
  child: ChildProcess;
  /** Resolves with the exit code, or null when a signal ended it. */
  exited: Promise<number | null>;
  /** What it wrote to stderr so far (when `log` is set: read from that file). */
  stderr(): string;
}

/** Starts the CLI; stderr is kept (or written to `log`); the process is killed at teardown if still running. */
export function spawnCli(
  t: Teardown,
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; log?: string } = {},
): CliProcess {
  const fd = opts.log === undefined ? 'pipe' : openSync(opts.log, 'w');
  const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: cliEnv(opts.env),
    stdio: ['ignore', 'ignore', fd],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal === null ? code : null)),
  );
  onTeardown(t, async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, exited, stderr: () => (opts.log === undefined ? stderr : readFileSync(opts.log, 'utf8')) };
}

export interface TestConfig {
  config: SluiceConfig;
  url: string;
  spoolDir: string;
}

/**
 * A config on a fresh database (migrated unless `migrated: false`), a spool folder and a consumer group of its own.
 */
export async function makeConfig(
  t: Teardown,
  layer: SluiceConfigInput = {},
  opts: { migrated?: boolean } = {},
): Promise<TestConfig> {
  const url = await testDatabase({ after: (fn: () => Promise<void>) => onTeardown(t, fn) });
  if (opts.migrated !== false) await migrate(dbConfig(url), silentLogger());
  const spoolDir = tempDir(t, 'sluice-spool-');
  const base = {
    database: { url },
    kafka: { brokers: BROKERS },
    spool: { dir: spoolDir },
    fetcher: { groupId: randomName('g') },
    worker: { pollMs: 20 },
  };
  return { config: validateConfig(mergeLayers(base, layer)), url, spoolDir };
}

export async function kafkaAdmin(t: Teardown, brokers = BROKERS): Promise<Admin> {
  const admin = new Kafka({ clientId: randomName('test'), brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  onTeardown(t, () => admin.disconnect());
  return admin;
}
