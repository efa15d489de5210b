// The errors a new user hits first: one line on stderr saying what is wrong and what to run, a non-zero
// exit code, and all of it within 5 seconds.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { silentLogger } from '../../src/core/logger.js';
import { DatabaseError } from '../../src/core/errors.js';
import { DEMO_MIGRATIONS_DIR, migrate, readMigrations } from '../../src/db/migrate.js';
import { createPrisma } from '../helpers/prisma.js';
import { withDatabase } from '../../src/db/database-url.js';
import { ROOT, runCli, type CliResult } from '../helpers/cli.js';
import { dbConfig, testDatabase } from '../helpers/db.js';
import { BROKERS, closedPort, ensureKafka } from '../helpers/kafka.js';

const FIVE_SECONDS = 5000;

function assertOneLineError(r: CliResult, code: number, message: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, message);
  assert.ok(r.ms < FIVE_SECONDS, `took ${Math.round(r.ms)} ms`);
}

describe('the first errors people hit', () => {
  let migrated: string;
  before(async () => {
    await ensureKafka();
  });

  it('database down: says it is unreachable and to run npm run services', async () => {
    const port = await closedPort();
    const r = await runCli(['doctor'], { env: { DATABASE_URL: `mysql://root@127.0.0.1:${port}/sluice` } });
    assertOneLineError(
      r,
      3,
      new RegExp(
        `^sluice: database unreachable at 127\\.0\\.0\\.1:${port} \\(connection ` +
          `refused\\) — start it with: npm run services`,
      ),
    );
  });

  it('wrong password: says the user was refused, not a pool timeout', async (t) => {
    migrated = await testDatabase(t);
    const bad = new URL(migrated);
    bad.password = 'definitely-wrong';
    const r = await runCli(['doctor'], { env: { DATABASE_URL: bad.toString() } });
    const at = bad.host.replace(/\./g, '\\.');
    assertOneLineError(
      r,
      3,
      new RegExp(
        `^sluice: database at ${at} refused user 'root' \\(wrong password\\?\\) — fix the user and password ` +
          `in DATABASE_URL$`,
      ),
    );
    assert.doesNotMatch(r.stderr, /definitely-wrong/);
  });

  it('wrong password through Prisma: fails in seconds with the same clear error', async () => {
    const url = new URL(withDatabase(migrated ?? 'mysql://root@127.0.0.1:3306/mysql', 'mysql'));
    url.password = 'definitely-wrong';
    const started = performance.now();
    await assert.rejects(
      createPrisma(dbConfig(url.toString())),
      (err: unknown) => err instanceof DatabaseError && err.code === 'DB_AUTH',
    );
    assert.ok(performance.now() - started < FIVE_SECONDS);
  });

  it('database missing: says to run npm run db:migrate, which creates it', async (t) => {
    const url = await testDatabase(t);
    const r = await runCli(['doctor'], { env: { DATABASE_URL: url } });
    assertOneLineError(
      r,
      3,
      /^sluice: database 'sluice_test_[0-9a-f]+' does not exist at .* — run: npm run db:migrate/,
    );
  });

  it('migrations not applied: says how many and to run npm run db:migrate', async (t) => {
    const url = await testDatabase(t, { create: true });
    const r = await runCli(['doctor'], { env: { DATABASE_URL: url } });
    const names = readMigrations().map((m) => m.name);
    assertOneLineError(
      r,
      4,
      new RegExp(
        `^sluice: the database has ${names.length} unapplied migration\\(s\\) ` +
          `\\(latest: ${names[names.length - 1]}\\) — run: npm run db:migrate$`,
      ),
    );
  });

  it('Kafka unreachable: says so and to run npm run services', async (t) => {
    const url = await testDatabase(t);
    await migrate(dbConfig(url), silentLogger());
    // The demo pipeline's source table comes with the demo's own migrations (as after `sluice demo`).
    await migrate(dbConfig(url), silentLogger(), DEMO_MIGRATIONS_DIR);
    const port = await closedPort();
    const r = await runCli(['doctor', '--brokers', `127.0.0.1:${port}`], { env: { DATABASE_URL: url } });
    assertOneLineError(
      r,
      3,
      new RegExp(`^sluice: Kafka unreachable at 127\\.0\\.0\\.1:${port} — start it with: npm run services`),
    );
    const ok = await runCli(['doctor', '--pipeline', 'demo', '--brokers', BROKERS.join(',')], {
      env: { DATABASE_URL: url },
    });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /ok {2}kafka/);
  });

  it('unknown pipeline name: lists the configured ones', async () => {
    const r = await runCli(['doctor', '--pipeline', 'nope']);
    assertOneLineError(r, 2, /^sluice: unknown pipeline 'nope' \(configured: demo\)/);
  });

  it('config file missing: names the file', async () => {
    const r = await runCli(['doctor', '--config', 'no-such-config.ts']);
    assertOneLineError(r, 2, /^sluice: invalid configuration: config file not found: no-such-config\.ts/);
  });

  it('config file invalid: names the bad key and what is wrong', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-badcfg-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      join(dir, 'sluice.config.ts'),
      `export default { pipelines: { docs: { source: { table: "docs'; DROP ` +
        `TABLE x; --", key: 'id', columns: [] } } } };\n`,
    );
    const r = await runCli(['doctor'], { cwd: dir, env: { SLUICE_CONFIG: join(dir, 'sluice.config.ts') } });
    assertOneLineError(
      r,
      2,
      /^sluice: invalid configuration: pipelines\.docs\.source\.table: must be an SQL identifier/,
    );
  });

  it('an unknown command or option: says so and where the help is', async () => {
    assertOneLineError(
      await runCli(['frobnicate']),
      2,
      /^sluice: unknown command 'frobnicate' .* — see: sluice --help$/,
    );
    assertOneLineError(
      await runCli(['migrate', '--bogus']),
      2,
      /^sluice: unknown option '--bogus' — see: sluice migrate --help$/,
    );
  });

  it('--help works on every command and exits 0', async () => {
    for (const args of [['--help'], ['services', '--help'], ['migrate', '--help'], ['doctor', '--help']]) {
      const r = await runCli(args, { cwd: ROOT });
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, /Usage: sluice/);
    }
  });
});
