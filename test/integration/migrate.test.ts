import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { MigrationError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { assertMigrated, migrate, MIGRATIONS_DIR, readMigrations } from '../../src/db/migrate.js';
import { openPool } from '../../src/db/pool.js';
import { runCli } from '../helpers/cli.js';
import { dbConfig, testDatabase } from '../helpers/db.js';

const log = silentLogger();

async function rows(url: string): Promise<RowDataPacket[]> {
  const conn = await mysql.createConnection(url);
  try {
    const [r] = await conn.query<RowDataPacket[]>('SELECT * FROM _sluice_migrations ORDER BY migration_name');
    return r;
  } finally {
    await conn.end();
  }
}

function copyMigrations(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-migrations-'));
  cpSync(MIGRATIONS_DIR, dir, { recursive: true });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('npm run db:migrate', () => {
  it('creates the database, applies every migration and records it as Prisma does', async (t) => {
    const url = await testDatabase(t);
    const r = await migrate(dbConfig(url), log);
    assert.equal(r.createdDatabase, true);
    assert.deepEqual(
      r.newlyApplied,
      readMigrations().map((m) => m.name),
    );

    const recorded = await rows(url);
    const files = readMigrations();
    assert.equal(recorded.length, files.length);
    for (const [i, row] of recorded.entries()) {
      const file = files[i]!;
      assert.equal(row.migration_name, file.name);
      const sql = readFileSync(join(MIGRATIONS_DIR, file.name, 'migration.sql'));
      assert.equal(row.checksum, createHash('sha256').update(sql).digest('hex'), 'checksum is sha256 of the file');
      assert.match(String(row.id), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      assert.ok(row.finished_at instanceof Date);
      assert.ok(row.started_at instanceof Date);
      assert.ok(row.finished_at >= row.started_at);
      assert.equal(row.applied_steps_count, 1);
      assert.equal(row.logs, null);
      assert.equal(row.rolled_back_at, null);
    }
  });

  it('is a no-op the second time: nothing applied, nothing recorded again', async (t) => {
    const url = await testDatabase(t);
    await migrate(dbConfig(url), log);
    const before = await rows(url);
    const again = await migrate(dbConfig(url), log);
    assert.equal(again.createdDatabase, false);
    assert.deepEqual(again.newlyApplied, []);
    assert.deepEqual(await rows(url), before);
  });

  it('twice in a row from the CLI: the second run says it is up to date and exits 0', async (t) => {
    const url = await testDatabase(t);
    const first = await runCli(['migrate'], { env: { DATABASE_URL: url } });
    assert.equal(first.code, 0, first.stderr);
    const names = readMigrations().map((m) => m.name);
    assert.ok(first.stdout.includes(`applied ${names.length} migration(s): ${names.join(', ')}`), first.stdout);
    const second = await runCli(['migrate'], { env: { DATABASE_URL: url } });
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /is up to date/);
  });

  it('applies a new migration added later, and only that one', async (t) => {
    const url = await testDatabase(t);
    const dir = copyMigrations(t);
    await migrate(dbConfig(url), log, dir);
    mkdirSync(join(dir, '20991231000000_extra'));
    writeFileSync(
      join(dir, '20991231000000_extra', 'migration.sql'),
      'CREATE TABLE `extra_t` (`id` INTEGER NOT NULL, PRIMARY KEY (`id`));\n',
    );
    const r = await migrate(dbConfig(url), log, dir);
    assert.deepEqual(r.newlyApplied, ['20991231000000_extra']);
    assert.equal((await rows(url)).length, readMigrations().length + 1);
  });

  it('reports an applied migration whose file changed, and applies nothing', async (t) => {
    const url = await testDatabase(t);
    const dir = copyMigrations(t);
    await migrate(dbConfig(url), log, dir);
    const file = join(dir, '20261123000000_init', 'migration.sql');
    writeFileSync(file, `${readFileSync(file, 'utf8')}\n-- edited after the fact\n`);
    await assert.rejects(migrate(dbConfig(url), log, dir), (err: unknown) => {
      assert.ok(err instanceof MigrationError);
      assert.equal(err.code, 'MIGRATION_MODIFIED');
      assert.match(err.message, /20261123000000_init was changed after it was applied/);
      return true;
    });
  });

  it('records a failing migration with its error, and refuses to go on until it is resolved', async (t) => {
    const url = await testDatabase(t);
    const dir = copyMigrations(t);
    mkdirSync(join(dir, '20991231000000_broken'));
    writeFileSync(join(dir, '20991231000000_broken', 'migration.sql'), 'CREATE TABLE `broken` (`id` NOT_A_TYPE);\n');
    await assert.rejects(migrate(dbConfig(url), log, dir), /migration 20991231000000_broken failed/);
    const broken = (await rows(url)).find((r) => r.migration_name === '20991231000000_broken');
    assert.ok(broken);
    assert.equal(broken.finished_at, null);
    assert.match(String(broken.logs), /NOT_A_TYPE/);
    await assert.rejects(migrate(dbConfig(url), log, dir), (err: unknown) => {
      assert.ok(err instanceof MigrationError);
      assert.equal(err.code, 'MIGRATION_FAILED_BEFORE');
      return true;
    });
  });

  it('lets two concurrent runs finish without applying anything twice', async (t) => {
    const url = await testDatabase(t);
    const [a, b] = await Promise.all([migrate(dbConfig(url), log), migrate(dbConfig(url), log)]);
    const n = readMigrations().length;
    assert.equal(a.newlyApplied.length + b.newlyApplied.length, n);
    assert.equal((await rows(url)).length, n);
  });

  it('assertMigrated names the command to run when migrations are pending', async (t) => {
    const url = await testDatabase(t, { create: true });
    const pool = await openPool(dbConfig(url));
    t.after(() => pool.end());
    await assert.rejects(assertMigrated(pool), (err: unknown) => {
      assert.ok(err instanceof MigrationError);
      assert.equal(err.hint, 'run: npx sluice migrate');
      return true;
    });
    await migrate(dbConfig(url), log);
    await assertMigrated(pool);
  });

  it("leaves an application's _prisma_migrations untouched, and creates no demo tables", async (t) => {
    const url = await testDatabase(t, { create: true });
    const conn = await mysql.createConnection(url);
    t.after(() => conn.end());
    await conn.query(
      `CREATE TABLE _prisma_migrations (id VARCHAR(36) PRIMARY KEY NOT NULL, ` +
        `checksum VARCHAR(64) NOT NULL, finished_at DATETIME(3),
      migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at ` +
        `DATETIME(3), started_at DATETIME(3) NOT NULL DEFAULT ` +
        `CURRENT_TIMESTAMP(3),
      applied_steps_count INTEGER UNSIGNED NOT NULL DEFAULT 0)`,
    );
    await conn.query(
      'INSERT INTO _prisma_migrations (id, checksum, finished_at, ' +
        "migration_name, applied_steps_count) VALUES ('a1', 'c1', NOW(3), " +
        "'20250101000000_app_users', 1)",
    );
    const [before] = await conn.query<RowDataPacket[]>('CHECKSUM TABLE _prisma_migrations');
    await migrate(dbConfig(url), log);
    const [after] = await conn.query<RowDataPacket[]>('CHECKSUM TABLE _prisma_migrations');
    assert.deepEqual(after, before, 'not one row of the application history changed');
    const [tables] = await conn.query<RowDataPacket[]>(
      'SELECT table_name AS t FROM information_schema.tables WHERE table_schema ' +
        "= DATABASE() AND table_name LIKE 'sluice_demo%'",
    );
    assert.deepEqual(tables, []);
    assert.equal((await rows(url)).length, readMigrations().length);
  });

  it('adopts sluice migrations an older version recorded in _prisma_migrations, reading that table only', async (t) => {
    const url = await testDatabase(t);
    await migrate(dbConfig(url), log);
    const conn = await mysql.createConnection(url);
    t.after(() => conn.end());
    await conn.query('CREATE TABLE _prisma_migrations AS SELECT * FROM _sluice_migrations');
    await conn.query('DROP TABLE _sluice_migrations');
    const again = await migrate(dbConfig(url), log);
    assert.deepEqual(again.newlyApplied, [], 'nothing applied twice');
    assert.equal((await rows(url)).length, readMigrations().length);
  });
});
