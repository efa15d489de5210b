// Applies prisma/migrations/<timestamp>_<name>/migration.sql without Prisma's schema engine, recording each
// one in sluice's own `_sluice_migrations`: the columns of Prisma's `_prisma_migrations` (same sha256
// checksum, started_at / finished_at / applied_steps_count), so the history reads the same, but never in
// Prisma's table itself. In a user's application database, `_prisma_migrations` is the application's
// history: sluice's migrations there would meet the application's `prisma migrate deploy`. A database that
// recorded sluice's migrations in `_prisma_migrations` before is adopted (its rows are copied, read-only).
// The demo's tables have migrations of their own (prisma/demo-migrations), applied by `sluice demo` only.
//
// A migration row goes: inserted (started_at, applied_steps_count 0) -> finished (finished_at, 1), or
// -> failed (logs set, finished_at NULL). A failed row blocks further runs until it is resolved, as in Prisma.

import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RowDataPacket } from 'mysql2/promise';
import type { DatabaseConfig } from '../config/config.js';
import { MigrationError } from '../core/errors.js';
import { COLUMN_BYTES, cutBytes } from '../core/text.js';
import { quoteIdentifier } from '../core/identifiers.js';
import type { Logger } from '../core/logger.js';
import { parseDatabaseUrl } from './database-url.js';
import { assertDatabaseUrl, openPool, type Pool } from './pool.js';
import { run } from '../core/hints.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));
export const DEMO_MIGRATIONS_DIR = fileURLToPath(new URL('../../prisma/demo-migrations', import.meta.url));
export const MIGRATIONS_TABLE = '_sluice_migrations';

/** Prisma's own DDL for its bookkeeping table on MySQL, under sluice's name. */
const MIGRATIONS_TABLE_DDL = `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             DATETIME(3),
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          DATETIME(3),
    started_at              DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    applied_steps_count     INTEGER UNSIGNED NOT NULL DEFAULT 0
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`;

const LOCK_NAME = 'sluice_migrate';
const LOCK_TIMEOUT_S = 10;

export interface MigrationFile {
  name: string;
  script: string;
  checksum: string;
}

export interface MigrationState {
  applied: string[];
  pending: string[];
  /** Applied, but the file on disk no longer matches what was applied. */
  modified: string[];
  /** Started and never finished (a failed run). */
  failed: string[];
  /** Recorded in the database, absent from disk. */
  unknown: string[];
}

export interface MigrateResult extends MigrationState {
  /** Applied by this call. */
  newlyApplied: string[];
  createdDatabase: boolean;
}

export function checksum(script: string): string {
  return createHash('sha256').update(script).digest('hex');
}

export function readMigrations(dir = MIGRATIONS_DIR): MigrationFile[] {
  if (!existsSync(dir)) throw new MigrationError('MIGRATIONS_MISSING', `no migrations folder at ${dir}`);
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, 'migration.sql')))
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const script = readFileSync(join(dir, name, 'migration.sql'), 'utf8');
      return { name, script, checksum: checksum(script) };
    });
}

interface Row extends RowDataPacket {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  logs: string | null;
}

async function tableExists(pool: Pool, table: string): Promise<boolean> {
  const [rows] = await pool.query<RowDataPacket[]>(
    'SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?',
    [table],
  );
  return rows.length > 0;
}

async function recordedRows(pool: Pool): Promise<Row[]> {
  if (!(await tableExists(pool, MIGRATIONS_TABLE))) return [];
  const [rows] = await pool.query<Row[]>(
    `SELECT migration_name, checksum, finished_at, logs FROM ${MIGRATIONS_TABLE}
     WHERE rolled_back_at IS NULL ORDER BY started_at, migration_name`,
  );
  return rows;
}

/** Every migration name sluice has (ledger and demo): rows of neither are someone else's. */
function knownNames(): Set<string> {
  const names = new Set<string>();
  for (const dir of [MIGRATIONS_DIR, DEMO_MIGRATIONS_DIR])
    if (existsSync(dir)) for (const f of readMigrations(dir)) names.add(f.name);
  return names;
}

/**
 * Copies sluice's rows out of an older `_prisma_migrations` into its own table, once; Prisma's table is only read.
 */
async function adoptPrismaHistory(pool: Pool, log: Logger): Promise<void> {
  if (!(await tableExists(pool, '_prisma_migrations'))) return;
  const [[own]] = await pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${MIGRATIONS_TABLE}`);
  if (Number(own?.n) > 0) return;
  const names = [...knownNames()];
  const [r] = await pool.query<import('mysql2').ResultSetHeader>(
    `INSERT INTO ${MIGRATIONS_TABLE} SELECT * FROM _prisma_migrations WHERE migration_name IN (?) AND ` +
      `rolled_back_at IS NULL`,
    [names],
  );
  if (r.affectedRows > 0)
    log.info(
      { migrations: r.affectedRows },
      'adopted sluice migrations recorded in _prisma_migrations (that table is left as it is)',
    );
}

/** Compares the migration files with what the database has recorded. Read-only. */
export async function migrationState(pool: Pool, files = readMigrations()): Promise<MigrationState> {
  const rows = await recordedRows(pool);
  const byName = new Map(rows.map((r) => [r.migration_name, r]));
  const fileNames = new Set([...files.map((f) => f.name), ...knownNames()]);
  const state: MigrationState = { applied: [], pending: [], modified: [], failed: [], unknown: [] };
  for (const f of files) {
    const row = byName.get(f.name);
    if (row === undefined) state.pending.push(f.name);
    else if (row.finished_at === null) state.failed.push(f.name);
    else {
      state.applied.push(f.name);
      // Prisma accepts a checksum of the file with either line ending.
      const alt = checksum(
        f.script.includes('\r\n') ? f.script.replace(/\r\n/g, '\n') : f.script.replace(/\n/g, '\r\n'),
      );
      if (row.checksum !== f.checksum && row.checksum !== alt) state.modified.push(f.name);
    }
  }
  for (const r of rows) if (!fileNames.has(r.migration_name)) state.unknown.push(r.migration_name);
  return state;
}

function blockingProblems(state: MigrationState): MigrationError | null {
  if (state.failed.length > 0) {
    return new MigrationError(
      'MIGRATION_FAILED_BEFORE',
      `migration ${state.failed.join(', ')} failed in an earlier run and was not rolled back`,
      {
        hint:
          `repair the database by hand, then mark it rolled ` +
          `back: UPDATE ${MIGRATIONS_TABLE} SET rolled_back_at = NOW(3) WHERE ` +
          `migration_name = '<name>'`,
      },
    );
  }
  if (state.modified.length > 0) {
    return new MigrationError(
      'MIGRATION_MODIFIED',
      `migration ${state.modified.join(', ')} was changed after it was applied (checksum differs)`,
      { hint: 'restore the applied file from version control and put the change in a new migration' },
    );
  }
  return null;
}

async function ensureDatabase(db: DatabaseConfig): Promise<boolean> {
  assertDatabaseUrl(db);
  const { database } = parseDatabaseUrl(db.url);
  const server = await openPool(db, { noDatabase: true, poolSize: 1 });
  try {
    const [rows] = await server.query<RowDataPacket[]>(
      'SELECT 1 FROM information_schema.schemata WHERE schema_name = ?',
      [database],
    );
    if (rows.length > 0) return false;
    await server.query(
      `CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(database)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
    );
    return true;
  } finally {
    await server.end();
  }
}

async function applyOne(pool: Pool, file: MigrationFile): Promise<void> {
  const id = randomUUID();
  await pool.query(
    `INSERT INTO ${MIGRATIONS_TABLE} (id, checksum, migration_name, started_at, applied_steps_count) VALUES ` +
      `(?, ?, ?, NOW(3), 0)`,
    [id, file.checksum, file.name],
  );
  try {
    await pool.query(file.script);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    await pool.query(`UPDATE ${MIGRATIONS_TABLE} SET logs = ? WHERE id = ?`, [cutBytes(msg, COLUMN_BYTES.text), id]);
    throw new MigrationError('MIGRATION_FAILED', `migration ${file.name} failed: ${msg}`, {
      hint: `fix the migration or the database; the failed run is recorded in ${MIGRATIONS_TABLE}`,
      cause: err,
    });
  }
  await pool.query(`UPDATE ${MIGRATIONS_TABLE} SET finished_at = NOW(3), applied_steps_count = 1 WHERE id = ?`, [id]);
}

/** Creates the database if needed and applies every pending migration, in name order. Idempotent. */
export async function migrate(db: DatabaseConfig, log: Logger, dir = MIGRATIONS_DIR): Promise<MigrateResult> {
  const files = readMigrations(dir);
  const createdDatabase = await ensureDatabase(db);
  if (createdDatabase) log.info({ database: parseDatabaseUrl(db.url).database }, 'database created');
  const pool = await openPool(db, { multipleStatements: true, poolSize: 1 });
  try {
    const [[lock]] = await pool.query<RowDataPacket[]>('SELECT GET_LOCK(?, ?) AS got', [LOCK_NAME, LOCK_TIMEOUT_S]);
    if (lock?.got !== 1) {
      throw new MigrationError(
        'MIGRATION_LOCKED',
        `another migration holds the lock '${LOCK_NAME}' (waited ${LOCK_TIMEOUT_S} s)`,
        {
          retriable: true,
          hint: `wait for the other ${run('migrate')} to finish, then run it again`,
        },
      );
    }
    try {
      await pool.query(MIGRATIONS_TABLE_DDL);
      await adoptPrismaHistory(pool, log);
      const before = await migrationState(pool, files);
      const blocked = blockingProblems(before);
      if (blocked !== null) throw blocked;
      for (const name of before.unknown) {
        log.warn({ migration: name }, 'migration recorded in the database has no folder on disk');
      }
      const newlyApplied: string[] = [];
      for (const file of files.filter((f) => before.pending.includes(f.name))) {
        log.info({ migration: file.name }, 'applying migration');
        await applyOne(pool, file);
        newlyApplied.push(file.name);
      }
      const after = await migrationState(pool, files);
      return { ...after, newlyApplied, createdDatabase };
    } finally {
      await pool.query('SELECT RELEASE_LOCK(?)', [LOCK_NAME]).catch(() => {});
    }
  } finally {
    await pool.end();
  }
}

/** Throws a MigrationError naming what to run when the database is not fully migrated. */
export async function assertMigrated(pool: Pool, files = readMigrations()): Promise<void> {
  const state = await migrationState(pool, files);
  const blocked = blockingProblems(state);
  if (blocked !== null) throw blocked;
  if (state.pending.length > 0) {
    const latest = state.pending[state.pending.length - 1];
    throw new MigrationError(
      'MIGRATIONS_PENDING',
      `the database has ${state.pending.length} unapplied migration(s) (latest: ${latest})`,
      { hint: `run: ${run('migrate')}` },
    );
  }
}
