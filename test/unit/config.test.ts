import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { defaults } from '../../src/config/config.js';
import { loadConfig } from '../../src/config/load.js';
import { validateConfig } from '../../src/config/validate.js';
import { ConfigError } from '../../src/core/errors.js';
import { quoteIdentifier } from '../../src/core/identifiers.js';
import { ROOT } from '../helpers/cli.js';

const INDEX = join(ROOT, 'src', 'index.ts');

function configDir(t: TestContext, body: string | null): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  if (body !== null)
    writeFileSync(
      join(dir, 'sluice.config.ts'),
      `import { defineConfig } from ${JSON.stringify(INDEX)};\nexport default defineConfig(${body});\n`,
    );
  return dir;
}

const source = { table: 'docs', key: 'id', columns: ['title', 'body'] };
const run = async () => 'ok';

function problemsOf(input: unknown): string[] {
  try {
    validateConfig(input);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return [...err.problems];
  }
  assert.fail('expected the configuration to be rejected');
}

const withPipeline = (pl: Record<string, unknown>, name = 'docs') => ({
  ...structuredClone(defaults),
  pipelines: { [name]: pl },
});

describe('configuration', () => {
  it('without a config file, is the defaults', async (t) => {
    const { config, file } = await loadConfig({ cwd: configDir(t, null), env: {} });
    assert.equal(file, null);
    assert.deepEqual(config, { ...defaults, pipelines: {} });
  });

  it('layers defaults < config file < environment < CLI flags', async (t) => {
    const dir = configDir(
      t,
      `{
      database: { url: 'mysql://file@db-from-file:3306/filedb', poolSize: 3 },
      kafka: { brokers: ['file:9092'], clientId: 'from-file' },
      log: { level: 'warn' },
    }`,
    );
    const onlyFile = await loadConfig({ cwd: dir, env: {} });
    assert.equal(onlyFile.config.database.url, 'mysql://file@db-from-file:3306/filedb');
    assert.equal(onlyFile.config.database.poolSize, 3);
    assert.equal(
      onlyFile.config.database.connectTimeoutMs,
      defaults.database.connectTimeoutMs,
      'untouched keys keep their default',
    );

    const env = {
      DATABASE_URL: 'mysql://env@db-from-env:3306/envdb',
      SLUICE_KAFKA_BROKERS: 'env1:9092, env2:9092',
      SLUICE_LOG_LEVEL: 'debug',
    };
    const withEnv = await loadConfig({ cwd: dir, env });
    assert.equal(withEnv.config.database.url, env.DATABASE_URL);
    assert.deepEqual(withEnv.config.kafka.brokers, ['env1:9092', 'env2:9092']);
    assert.equal(withEnv.config.kafka.clientId, 'from-file');
    assert.equal(withEnv.config.database.poolSize, 3);

    const withFlags = await loadConfig({
      cwd: dir,
      env,
      flags: { 'database-url': 'mysql://flag@db-from-flag:3306/flagdb', 'log-level': 'error' },
    });
    assert.equal(withFlags.config.database.url, 'mysql://flag@db-from-flag:3306/flagdb');
    assert.equal(withFlags.config.log.level, 'error');
    assert.deepEqual(withFlags.config.kafka.brokers, ['env1:9092', 'env2:9092']);
  });

  it('fills pipeline defaults: topic sluice.<name>, 6 partitions, no stages', async (t) => {
    const dir = configDir(t, `{ pipelines: { docs: { source: { table: 'docs', key: 'id', columns: ['title'] } } } }`);
    const { config } = await loadConfig({ cwd: dir, env: {} });
    assert.equal(config.pipelines.docs?.topic, 'sluice.docs');
    assert.equal(config.pipelines.docs?.partitions, 6);
    assert.deepEqual(config.pipelines.docs?.stages, []);
  });

  it('accepts a full pipeline with stages and a database.table source', () => {
    const c = validateConfig(
      withPipeline({
        topic: 't.docs',
        partitions: 12,
        source: { ...source, table: 'other_db.docs' },
        stages: [{ name: 'ner', run, concurrency: 2, ratePerSecond: 5, timeoutMs: 1000, retry: { maxAttempts: 5 } }],
      }),
    );
    assert.equal(c.pipelines.docs?.stages[0]?.name, 'ner');
  });

  it('rejects an SQL injection attempt in a table or column name before any SQL is built', () => {
    const problems = problemsOf(
      withPipeline({
        source: { table: 'docs; DROP TABLE sluice_results; --', key: 'id`x', columns: ['title', 'a b'] },
      }),
    );
    assert.equal(problems.length, 3);
    assert.match(
      problems[0]!,
      /^pipelines\.docs\.source\.table: must be an SQL identifier .*got "docs; DROP TABLE sluice_results; --"/,
    );
    assert.match(problems[1]!, /^pipelines\.docs\.source\.key: must be an SQL identifier/);
    assert.match(problems[2]!, /^pipelines\.docs\.source\.columns\[1\]: must be an SQL identifier/);
    assert.throws(() => quoteIdentifier('docs`; DROP TABLE x'), TypeError);
    assert.equal(quoteIdentifier('db.docs'), '`db`.`docs`');
  });

  it('names every bad key at once, with what is wrong', () => {
    const problems = problemsOf({
      ...withPipeline(
        {
          topic: 'bad topic!',
          partitions: 0,
          source,
          stages: [
            { name: 'ner', run },
            { name: 'ner', run: 'not a function', concurrency: -1 },
          ],
        },
        'Bad Name',
      ),
      database: { ...defaults.database, poolSize: 0 },
      kafka: { ...defaults.kafka, brokers: ['no-port'], sasl: { mechanism: 'md5', username: 'u', password: 'p' } },
      log: { level: 'loud', pretty: 'auto' },
      spool: { ...defaults.spool, dir: '' },
      extra: true,
    });
    const keys = problems.map((p) => p.split(':')[0]);
    // Schema order, unknown keys after the known ones; then the checks across fields (names, duplicates).
    assert.deepEqual(keys, [
      'database.poolSize',
      'kafka.brokers[0]',
      'kafka.sasl.mechanism',
      'log.level',
      'spool.dir',
      'pipelines.Bad Name.topic',
      'pipelines.Bad Name.partitions',
      'pipelines.Bad Name.stages[1].run',
      'pipelines.Bad Name.stages[1].concurrency',
      'extra',
      'pipelines.Bad Name',
      'pipelines.Bad Name.stages[1].name',
    ]);
  });

  it('reports a misspelt key as unknown, listing the allowed ones', () => {
    const problems = problemsOf({ ...structuredClone(defaults), kafka: { ...defaults.kafka, broker: ['x:1'] } });
    assert.deepEqual(problems, [
      'kafka.broker: unknown key (allowed: brokers, clientId, ssl, sasl, ' +
        'connectionTimeoutMs, requestTimeoutMs, retries, retryInitialMs, ' +
        'retryMaxMs)',
    ]);
  });

  it('never echoes a database URL or SASL password in its messages', () => {
    const problems = problemsOf({
      ...structuredClone(defaults),
      database: { ...defaults.database, url: 'postgres://u:hunter2@h/db' },
      kafka: { ...defaults.kafka, sasl: { mechanism: 'plain', username: 'u', password: 42 } },
    });
    assert.ok(problems.length >= 2);
    for (const p of problems) assert.doesNotMatch(p, /hunter2|42/);
  });

  it('names the environment variable when its value is malformed', async (t) => {
    await assert.rejects(
      loadConfig({ cwd: configDir(t, null), env: { SLUICE_DB_POOL_SIZE: 'lots' } }),
      /SLUICE_DB_POOL_SIZE: must be a whole number, got "lots"/,
    );
    await assert.rejects(
      loadConfig({ cwd: configDir(t, null), env: { SLUICE_KAFKA_SSL: 'maybe' } }),
      /SLUICE_KAFKA_SSL: must be true or false/,
    );
  });

  it('fails clearly when an explicit config file is missing, broken or has no default export', async (t) => {
    const dir = configDir(t, null);
    await assert.rejects(
      loadConfig({ cwd: dir, env: {}, flags: { config: 'missing.ts' } }),
      /config file not found: missing\.ts/,
    );
    await assert.rejects(loadConfig({ cwd: dir, env: { SLUICE_CONFIG: 'missing.ts' } }), /config file not found/);
    writeFileSync(join(dir, 'broken.ts'), 'export default {{{ nope');
    await assert.rejects(
      loadConfig({ cwd: dir, env: {}, flags: { config: 'broken.ts' } }),
      (err: unknown) => err instanceof ConfigError && /cannot load .*broken\.ts/.test(err.message),
    );
    writeFileSync(join(dir, 'nodefault.ts'), 'export const x = 1;');
    await assert.rejects(
      loadConfig({ cwd: dir, env: {}, flags: { config: 'nodefault.ts' } }),
      /must `export default defineConfig/,
    );
  });

  it("loads the project's own sluice.config.ts", async () => {
    const { config, file } = await loadConfig({ cwd: ROOT, env: {} });
    assert.equal(file, join(ROOT, 'sluice.config.ts'));
    assert.equal(config.pipelines.demo?.source.table, 'sluice_demo_documents');
  });
});
