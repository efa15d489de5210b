// Every config, source and spool problem is one line naming the key, exit 2; a long-running command whose
// loop fails closes what it holds and exits; a source table dropped mid-run is a source problem, not an
// outage.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql, { type Connection } from 'mysql2/promise';
import { defaults, mergeLayers } from '../../src/config/config.js';
import { validateConfig } from '../../src/config/validate.js';
import { ConfigError, SourceError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { migrate } from '../../src/db/migrate.js';
import { produce } from '../../src/producer/producer.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { spawnCli, fileTeardown } from '../helpers/fixtures.js';
import { dbConfig, randomName, testDatabase } from '../helpers/db.js';
import { BROKERS, ensureKafka } from '../helpers/kafka.js';
import { waitFor } from '../helpers/spool.js';
import { seq } from '../helpers/regex.js';

let url: string;
let db: Connection;
let dir: string;
let env: Record<string, string>;

before(async () => {
  await ensureKafka();
  url = await testDatabase(file);
  await migrate(dbConfig(url), silentLogger());
  db = await mysql.createConnection(url);
  await db.query('CREATE TABLE docs (id INT PRIMARY KEY, body TEXT)');
  await db.query('CREATE TABLE loose (id INT NULL, UNIQUE (id))');
  dir = mkdtempSync(join(tmpdir(), 'sluice-cli-errors-'));
  writeFileSync(
    join(dir, 'sluice.config.ts'),
    `export default { worker: { pollMs: 20 }, pipelines: {
  good: ` +
      `{ topic: ${JSON.stringify(randomName('t'))}, source: { table: 'docs', ` +
      `key: 'id', columns: ['body'] }, stages: [{ ` +
      `name: 's', run: async (p) => p }] },
  loose: ` +
      `{ topic: ${JSON.stringify(randomName('t'))}, source: { table: 'loose', ` +
      `key: 'id', columns: [] }, stages: [{ name: ` +
      `'s', run: async (p) => p }] },
  gone: ` +
      `{ topic: ${JSON.stringify(randomName('t'))}, source: { table: 'nope', ` +
      `key: 'id', columns: [] }, stages: [{ name: ` +
      `'s', run: async (p) => p }] },
} };\n`,
  );
  env = {
    DATABASE_URL: url,
    SLUICE_KAFKA_BROKERS: BROKERS.join(','),
    SLUICE_CONFIG: join(dir, 'sluice.config.ts'),
    SLUICE_SPOOL_DIR: join(dir, 'spool'),
  };
});
after(async () => {
  // end() waits for the server's goodbye; never let a stuck statement keep the test process alive.
  await Promise.race([db?.end(), new Promise((r) => setTimeout(r, 2000))]);
  db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});
const file = fileTeardown();

function assertOneLine(r: CliResult, code: number, message: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, message);
}

describe('problems of the spool, the pipeline name and the source', () => {
  it('spool.dir pointing at a regular file: one line naming spool.dir, exit 2 (work and fetch)', async () => {
    const file = join(dir, 'not-a-folder');
    writeFileSync(file, 'x');
    for (const command of ['work', 'fetch']) {
      const r = await runCli([command, '--pipeline', 'good'], { env: { ...env, SLUICE_SPOOL_DIR: file } });
      assertOneLine(
        r,
        2,
        /^sluice: spool\.dir: cannot use .*not-a-folder.*: a file stands where a folder should be \(ENOTDIR\)/,
      );
    }
  });

  it('pipeline names from Object.prototype are unknown pipelines, and nothing is created for them', async () => {
    for (const [command, name] of [
      ['work', 'constructor'],
      ['fetch', '__proto__'],
      ['status', 'toString'],
    ] as const) {
      const r = await runCli([command, '--pipeline', name], { env });
      assertOneLine(r, 2, new RegExp(`^sluice: unknown pipeline '${name}' \\(configured: good, loose, gone\\)`));
    }
    assert.equal(existsSync(join(dir, 'spool', 'constructor')), false);
    assert.equal(existsSync(join(dir, 'spool', '__proto__')), false);
  });

  it(
    'a missing source table or a key that may be NULL: exit 2 with the key ' + 'and the fix, from every command',
    async () => {
      for (const command of ['produce', 'doctor', 'work', 'fetch', 'status']) {
        const r = await runCli([command, '--pipeline', 'gone'], { env });
        assertOneLine(r, 2, /^sluice: pipelines\.gone\.source\.table: source table 'nope' does not exist/);
        const n = await runCli([command, '--pipeline', 'loose'], { env });
        assertOneLine(
          n,
          2,
          seq(
            /^sluice: pipelines\.loose\.source\.key: 'loose\.id' may be NULL; /,
            /.* ALTER TABLE loose MODIFY id int\(11\) NOT NULL$/,
          ),
        );
      }
    },
  );

  it('a duration past what a timer can hold is refused by name (30 days of stage timeout)', () => {
    assert.throws(
      () =>
        validateConfig(
          mergeLayers(structuredClone(defaults), {
            pipelines: {
              p: {
                source: { table: 't', key: 'id', columns: [] },
                stages: [{ name: 's', run: () => 1, timeoutMs: 30 * 86_400_000 }],
              },
            },
          }),
        ),
      (e: unknown) =>
        e instanceof ConfigError &&
        /pipelines\.p\.stages\[0\]\.timeoutMs: must be an integer from 1 to 2147483647, got 2592000000/.test(e.message),
    );
    assert.throws(
      () =>
        validateConfig(
          mergeLayers(structuredClone(defaults), {
            spool: { leaseMs: 2 ** 31 },
            fetcher: { maxBytes: 2 ** 32 },
            producer: { staleAfterMs: 2 ** 40 },
          }),
        ),
      (e: unknown) => e instanceof ConfigError && e.problems.length === 3,
    );
  });

  it('produce --flush-ms 0 is refused like producer.flushMs 0 in the file', async () => {
    const r = await runCli(['produce', '--pipeline', 'good', '--flush-ms', '0'], { env });
    assertOneLine(r, 2, /--flush-ms \(producer\.flushMs\): must be an integer from 1 to 600000, got "0"/);
  });
});

describe('a failure in the middle of a run', () => {
  it(
    'work whose claim loop fails (ready/ replaced by a file) says so in one ' + 'line and exits within seconds',
    async (t) => {
      const spool = join(dir, 'spool-fail');
      const work = spawnCli(t, ['work', '--pipeline', 'good'], {
        env: { ...env, SLUICE_SPOOL_DIR: spool, SLUICE_LOG_LEVEL: 'info' },
      });
      const exited = work.exited;
      {
        const stderr = (): string => work.stderr();
        await waitFor('the worker to start', () => stderr().includes('worker started'), 20_000);
        rmSync(join(spool, 'good', 'ready'), { recursive: true, force: true });
        writeFileSync(join(spool, 'good', 'ready'), 'in the way');
        const t0 = performance.now();
        const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 10_000))]);
        assert.equal(code, 2, `exit code; stderr:\n${stderr().slice(-2000)}`);
        assert.ok(performance.now() - t0 < 10_000);
        assert.match(stderr(), /sluice: spool\.dir: cannot use .*ready: .* \((ENOTDIR|ENOENT)\)/);
      }
    },
  );

  it('a source table dropped while produce runs fails as a source problem naming the pipeline', async () => {
    const table = randomName('vanishing');
    await db.query(`CREATE TABLE ${table} (id INT PRIMARY KEY)`);
    await db.query(`INSERT INTO ${table} SELECT seq FROM seq_1_to_40`);
    let dropping: Promise<unknown> | undefined;
    const config = validateConfig(
      mergeLayers(structuredClone(defaults), {
        database: { url },
        kafka: { brokers: BROKERS },
        producer: { pageSize: 2, flushMs: 1 },
        pipelines: {
          v: {
            topic: randomName('sluice-v'),
            partitions: 1,
            source: {
              table,
              key: 'id',
              columns: [],
              payload: (row: Record<string, unknown>) => {
                dropping ??= db.query(`DROP TABLE ${table}`);
                return row;
              },
            },
          },
        },
      }),
    );
    await assert.rejects(
      produce({ config, pipeline: 'v', log: silentLogger(), count: false }),
      (e: unknown) =>
        e instanceof SourceError && /pipelines\.v\.source: source table '.*' no longer exists/.test(e.message),
    );
    // Nothing of the test may still run when the file ends.
    await dropping;
  });
});

describe('finding the configuration', () => {
  it('uses the nearest sluice.config.* in a parent folder (.mjs too)', async () => {
    const { loadConfig } = await import('../../src/config/load.js');
    const root = mkdtempSync(join(tmpdir(), 'sluice-discovery-'));
    try {
      const nested = join(root, 'a', 'b');
      mkdirSync(nested, { recursive: true });
      writeFileSync(join(root, 'sluice.config.mjs'), 'export default { worker: { pollMs: 77 } };\n');
      const { config, file } = await loadConfig({ cwd: nested, env: {} });
      assert.equal(file, join(root, 'sluice.config.mjs'));
      assert.equal(config.worker.pollMs, 77);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it(
    'with no config file and no database URL, a command that needs the ' + 'database stops and says so (exit 2)',
    async () => {
      const empty = mkdtempSync(join(tmpdir(), 'sluice-noconfig-'));
      try {
        const clean = Object.fromEntries(
          Object.entries(process.env).filter(([k]) => k !== 'DATABASE_URL' && k !== 'SLUICE_CONFIG'),
        ) as Record<string, string>;
        for (const command of ['doctor', 'migrate']) {
          const r = await runCli([command], { cwd: empty, env: { ...clean, DATABASE_URL: '' } });
          assertOneLine(
            r,
            2,
            seq(
              /database\.url is not set: set DATABASE_URL, pass --database-url, /,
              /or set database\.url in sluice\.config\.ts/,
            ),
          );
        }
      } finally {
        rmSync(empty, { recursive: true, force: true });
      }
    },
  );
});
