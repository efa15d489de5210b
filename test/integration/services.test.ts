// scripts/services.sh (npm run services): a private broker on its own ports and state folder, so starting,
// killing and stopping it disturbs no other test.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { ROOT } from '../helpers/cli.js';
import { BROKERS, closedPort, ensureKafka } from '../helpers/kafka.js';
import { randomName } from '../helpers/db.js';

interface Run {
  code: number;
  out: string;
  ms: number;
}

describe('npm run services', () => {
  let dir: string;
  let env: Record<string, string>;
  let port: number;

  const services = (...args: string[]): Promise<Run> => {
    const started = performance.now();
    return new Promise((resolve) => {
      execFile(
        'bash',
        [join(ROOT, 'scripts/services.sh'), ...args],
        { env: { ...process.env, ...env }, timeout: 180_000 },
        (err, stdout, stderr) => {
          const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
          resolve({ code, out: stdout + stderr, ms: performance.now() - started });
        },
      );
    });
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-services-'));
    port = await closedPort();
    let controller = await closedPort();
    while (controller === port) controller = await closedPort();
    env = {
      SLUICE_SERVICES_DIR: dir,
      SLUICE_KAFKA_PORT: String(port),
      SLUICE_KAFKA_CONTROLLER_PORT: String(controller),
      SLUICE_KAFKA_HEAP: '-Xms128m -Xmx256m',
      SLUICE_SKIP_MYSQL: '1',
    };
    // Reuse the jars the project's own broker already fetched, when there are some.
    const shared = join(ROOT, '.services', 'kafka', 'libs');
    if (existsSync(join(shared, '.pom-sha256'))) {
      mkdirSync(join(dir, 'kafka'), { recursive: true });
      symlinkSync(shared, join(dir, 'kafka', 'libs'));
    }
  });

  after(async () => {
    await services('down');
    rmSync(dir, { recursive: true, force: true });
  });

  const admin = () =>
    new Kafka({
      clientId: 'services-test',
      brokers: [`127.0.0.1:${port}`],
      logLevel: logLevel.NOTHING,
      retry: { retries: 3 },
    }).admin();

  it('up: starts a KRaft broker that answers metadata requests', async () => {
    const r = await services('up');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`kafka ready on 127\\.0\\.0\\.1:${port}`));
    const a = admin();
    await a.connect();
    try {
      await a.createTopics({ topics: [{ topic: 'kept', numPartitions: 3 }], waitForLeaders: true });
      const meta = await a.fetchTopicMetadata({ topics: ['kept'] });
      assert.equal(meta.topics[0]?.partitions.length, 3);
    } finally {
      await a.disconnect();
    }
  });

  it('up again: a no-op that takes seconds, not a second broker', async () => {
    const pid = readFileSync(join(dir, 'kafka', 'kafka.pid'), 'utf8').trim();
    const r = await services('up');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`kafka already running on 127\\.0\\.0\\.1:${port} \\(pid ${pid}\\)`));
    assert.ok(r.ms < 10_000, `took ${Math.round(r.ms)} ms`);
    assert.equal(readFileSync(join(dir, 'kafka', 'kafka.pid'), 'utf8').trim(), pid);
    assert.equal((await services('status')).code, 0);
  });

  it('after kill -9: status says down; up handles the stale pid file and keeps the data', async () => {
    const pid = Number(readFileSync(join(dir, 'kafka', 'kafka.pid'), 'utf8').trim());
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 50; i++) {
      try {
        process.kill(pid, 0);
        await new Promise((r) => setTimeout(r, 100));
      } catch {
        break;
      }
    }
    const down = await services('status');
    assert.equal(down.code, 1);
    assert.match(down.out, /kafka {3}down/);
    const r = await services('up');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /starting kafka/);
    const a = admin();
    await a.connect();
    try {
      assert.ok((await a.listTopics()).includes('kept'), 'topics survive a restart');
    } finally {
      await a.disconnect();
    }
  });

  it('a pid file naming a process that is not the broker is treated as stale', async () => {
    await services('down');
    writeFileSync(join(dir, 'kafka', 'kafka.pid'), `${process.pid}\n`);
    const r = await services('up');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /starting kafka/);
  });

  it('down: stops the broker; down again is a no-op', async () => {
    const r = await services('down');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /kafka stopped/);
    assert.equal((await services('status')).code, 1);
    const again = await services('down');
    assert.equal(again.code, 0);
    assert.match(again.out, /kafka not running/);
  });

  it("the project's broker lists its metadata to a standard client", async () => {
    await ensureKafka();
    const a = new Kafka({ clientId: 'metadata-test', brokers: BROKERS, logLevel: logLevel.NOTHING }).admin();
    await a.connect();
    try {
      const topic = randomName('sluice-meta');
      await a.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
      const cluster = await a.describeCluster();
      assert.equal(cluster.brokers.length, 1);
      const meta = await a.fetchTopicMetadata({ topics: [topic] });
      assert.equal(meta.topics[0]?.partitions.length, 2);
      await a.deleteTopics({ topics: [topic] });
    } finally {
      await a.disconnect();
    }
  });
});
