// Kafka as it is shared in production: two deployments (two ledgers: two databases) with a pipeline of the
// same name on one cluster, and a cluster with a seed broker down. A deployment never publishes into, nor
// consumes from, the topic or group another ledger uses: it refuses to start (exit 2, one line naming the
// name, the other ledger and the setting). A message of another ledger that reaches a fetcher anyway is
// quarantined as other-ledger. A dead seed broker is a broker down, not Kafka down.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { defaults, mergeLayers } from '../../src/config/config.js';
import { validateConfig } from '../../src/config/validate.js';
import { KafkaError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { migrate } from '../../src/db/migrate.js';
import { startFetcher } from '../../src/fetcher/fetcher.js';
import { checkKafka } from '../../src/kafka/client.js';
import { runCli } from '../helpers/cli.js';
import { dbConfig, randomName, testDatabase, createIntSource } from '../helpers/db.js';
import { fileTeardown, spawnCli, tempDir } from '../helpers/fixtures.js';
import { BROKERS, closedPort, ensureKafka } from '../helpers/kafka.js';
import { createTopic, envelope, highWatermarks, publishRaw, spooledItems, waitFor } from '../helpers/spool.js';

const file = fileTeardown();
const log = silentLogger();

interface Deployment {
  url: string;
  ledger: string;
  env: Record<string, string>;
}

/** A database migrated by sluice (a ledger) with a source of 100 rows, and a config file for pipeline `name`. */
async function deployment(name: string, pipelineExtra = ''): Promise<Deployment> {
  const url = await testDatabase(file);
  await migrate(dbConfig(url), log);
  const conn = await mysql.createConnection(url);
  await createIntSource(conn, 'docs', 100);
  const [[row]] = await conn.query<RowDataPacket[]>('SELECT id FROM sluice_ledger');
  await conn.end();
  const dir = tempDir(file, 'sluice-deploy-');
  writeFileSync(
    join(dir, 'sluice.config.ts'),
    `export default { pipelines: { ${name}: { ` +
      `partitions: 2, ${pipelineExtra} source: { table: 'docs', key: 'id', ` +
      `columns: [] } } } };\n`,
  );
  const env = {
    DATABASE_URL: url,
    SLUICE_KAFKA_BROKERS: BROKERS.join(','),
    SLUICE_LOG_LEVEL: 'warn',
    SLUICE_CONFIG: join(dir, 'sluice.config.ts'),
    SLUICE_SPOOL_DIR: tempDir(file, 'sluice-spool-'),
  };
  return { url, ledger: String(row!.id), env };
}

const dispatches = async (url: string): Promise<number> => {
  const conn = await mysql.createConnection(url);
  const [[r]] = await conn.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sluice_dispatches');
  await conn.end();
  return Number(r!.n);
};

/** The CLI's one-line refusal, on stderr. */
const refusal = (stderr: string): string => stderr.split('\n').find((l) => l.startsWith('sluice: ')) ?? stderr;

before(() => ensureKafka());

describe('two deployments, one Kafka cluster, one pipeline name', () => {
  const name = randomName('docs');
  // The defaults: topic sluice.<name>, consumer group sluice.<name>; both deployments leave them as they are.
  const topic = `sluice.${name}`;
  let staging: Deployment;
  let production: Deployment;
  before(async () => {
    staging = await deployment(name);
    production = await deployment(name);
    assert.notEqual(staging.ledger, production.ledger, 'each migrated database has its own ledger id');
  });

  it('the second deployment to produce into the default topic is refused (exit 2) and publishes nothing', async () => {
    const first = await runCli(['produce', '--pipeline', name], { env: staging.env });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(await dispatches(staging.url), 100);

    const second = await runCli(['produce', '--pipeline', name], { env: production.env });
    assert.equal(second.code, 2, second.stderr);
    const line = refusal(second.stderr);
    assert.match(
      line,
      new RegExp(
        `^sluice: Kafka topic '${topic.replace(/\./g, '\\.')}' is used by ` +
          `another deployment \\(ledger ${staging.ledger}; this one ` +
          `is ledger ${production.ledger}\\)`,
      ),
    );
    assert.match(line, new RegExp(`set pipelines\\.${name}\\.topic`));
    assert.equal(await dispatches(production.url), 0, 'nothing recorded');
    const high = [...(await highWatermarks(topic)).values()].reduce((a, b) => a + b, 0n);
    assert.equal(high, 100n, "the topic holds the first deployment's 100 tasks only");
  });

  it(
    'its fetch and doctor are refused too, and so is a fetch on its own topic ' + 'that would join the other group',
    async (t) => {
      const fetch = await runCli(['fetch', '--pipeline', name], { env: production.env });
      assert.equal(fetch.code, 2, fetch.stderr);
      assert.match(
        refusal(fetch.stderr),
        new RegExp(
          `Kafka topic '${topic.replace(/\./g, '\\.')}' is used by another deployment \\(ledger ${staging.ledger};`,
        ),
      );
      const doctor = await runCli(['doctor', '--pipeline', name], { env: production.env });
      assert.equal(doctor.code, 2, doctor.stdout + doctor.stderr);
      assert.match(refusal(doctor.stderr), /is used by another deployment/);
      assert.match(doctor.stdout, new RegExp(`ledger +${production.ledger}`));

      // The first deployment's fetcher joins (and claims) the default group.
      const fetcher = spawnCli(t, ['fetch', '--pipeline', name], { env: { ...staging.env, SLUICE_LOG_LEVEL: 'info' } });
      await waitFor('the first fetcher runs', () => fetcher.stderr().includes('fetcher started'), 30_000);
      fetcher.child.kill('SIGTERM');
      assert.equal(await fetcher.exited, 0);

      // The second deployment gives itself a topic but forgets the group: refused, naming the group and its setting.
      const own = await deployment(name, `topic: '${randomName('sluice-own')}',`);
      const joins = await runCli(['fetch', '--pipeline', name], { env: own.env });
      assert.equal(joins.code, 2, joins.stderr);
      assert.match(
        refusal(joins.stderr),
        new RegExp(
          `Kafka group '${topic.replace(/\./g, '\\.')}' is used by another deployment \\(ledger ${staging.ledger};`,
        ),
      );
      assert.match(refusal(joins.stderr), /set fetcher\.groupId \(SLUICE_FETCH_GROUP_ID\)/);
    },
  );

  it('the same deployment starts again and again on the names it claimed', async () => {
    const again = await runCli(['produce', '--pipeline', name], { env: staging.env });
    assert.equal(again.code, 0, again.stderr);
    const doctor = await runCli(['doctor', '--pipeline', name], { env: staging.env });
    assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
    assert.match(doctor.stdout, /ok {2}claims +topic .*, group .*: no other ledger uses them/);
    assert.match(doctor.stdout, /ok {2}topic +\S+: 2 partition\(s\), replication factor 1, min\.insync\.replicas 1/);
  });
});

describe('a message of another ledger', () => {
  it(
    'is quarantined by the fetcher as other-ledger with that ledger id; one ' +
      'without a ledger id is spooled as before',
    async () => {
      const name = randomName('f');
      const d = await deployment(name);
      const topic = randomName('sluice-foreign');
      await createTopic(topic, 1);
      const config = validateConfig(
        mergeLayers(structuredClone(defaults), {
          database: { url: d.url },
          kafka: { brokers: BROKERS },
          fetcher: { groupId: randomName('g') },
          spool: { dir: tempDir(file, 'sluice-spool-') },
          pipelines: { [name]: { topic, partitions: 1, source: { table: 'docs', key: 'id', columns: [] } } },
        }),
      );
      const other = '0b5e7a40-1111-4222-8333-444455556666';
      const withLedger = (key: number, ledger: string) =>
        JSON.stringify({ ...JSON.parse(envelope(name, key)), ledger });
      await publishRaw(topic, [
        { key: '1', value: withLedger(1, other) },
        { key: '2', value: envelope(name, 2) },
        { key: '3', value: withLedger(3, d.ledger) },
      ]);
      const f = await startFetcher({ config, pipeline: name, log });
      file.after(() => f.stop());
      await waitFor('three messages handled', () => f.stats().spooled + f.stats().quarantined >= 3, 30_000);
      await f.stop();
      assert.deepEqual([f.stats().spooled, f.stats().quarantined], [2, 1]);
      assert.deepEqual(
        spooledItems(f.paths.root)
          .map((i) => i.task.key)
          .sort(),
        [2, 3],
      );
      const conn = await mysql.createConnection(d.url);
      const [rows] = await conn.query<RowDataPacket[]>('SELECT reason, detail, message_key FROM sluice_bad_messages');
      await conn.end();
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.reason, 'other-ledger');
      assert.match(String(rows[0]!.detail), new RegExp(other));
    },
  );
});

describe('a seed broker down', () => {
  it('the start-up check goes on with the seeds that answer and names the one that does not', async () => {
    const dead = `127.0.0.1:${await closedPort()}`;
    const cfg = validateConfig(
      mergeLayers(structuredClone(defaults), {
        kafka: { brokers: [dead, dead.replace('127.0.0.1', 'localhost'), ...BROKERS] },
      }),
    ).kafka;
    // kafkajs without retries picks one seed at random: five checks in a row would meet a dead one.
    for (let i = 0; i < 5; i++) {
      const k = await checkKafka(cfg, log);
      assert.ok(k.brokers >= 1);
    }
    const k = await checkKafka(cfg, log, 4000, { all: true });
    assert.deepEqual(
      k.seeds.map((s) => s.ok),
      [false, false, true],
    );
    assert.match(k.seeds[0]!.error ?? '', /ECONNREFUSED|Connection|connect/i);
  });

  it('every seed down: one error naming each seed, within the deadline', async () => {
    const cfg = validateConfig(
      mergeLayers(structuredClone(defaults), {
        kafka: { brokers: [`127.0.0.1:${await closedPort()}`, `127.0.0.1:${await closedPort()}`] },
      }),
    ).kafka;
    await assert.rejects(checkKafka(cfg, log, 1500), (err: unknown) => {
      assert.ok(err instanceof KafkaError);
      assert.equal(err.code, 'KAFKA_UNREACHABLE');
      for (const b of cfg.brokers) assert.ok(err.message.includes(b), err.message);
      return true;
    });
  });

  it('status and doctor name the seed that is down and show the topic replication', async () => {
    const name = randomName('s');
    const d = await deployment(name);
    const dead = `127.0.0.1:${await closedPort()}`;
    const env = { ...d.env, SLUICE_KAFKA_BROKERS: [dead, ...BROKERS].join(',') };
    const produced = await runCli(['produce', '--pipeline', name], { env });
    assert.equal(produced.code, 0, produced.stderr);
    const status = await runCli(['status', '--pipeline', name], { env });
    assert.equal(status.code, 0, status.stderr);
    assert.match(
      status.stdout,
      new RegExp(
        `kafka: 1 live broker\\(s\\), seed broker\\(s\\) DOWN: ${dead}; topic: ` +
          `2 partition\\(s\\), replication factor 1`,
      ),
    );
    const doctor = await runCli(['doctor', '--pipeline', name], { env });
    assert.equal(doctor.code, 0, doctor.stderr);
    assert.match(doctor.stdout, new RegExp(`warn kafka +seed broker ${dead} is down`));
  });
});
