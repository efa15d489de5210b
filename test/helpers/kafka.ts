// Makes sure a broker answers on 127.0.0.1:9092, starting the project's own one when nothing listens.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { silentLogger } from '../../src/core/logger.js';
import { defaults } from '../../src/config/config.js';
import { checkKafka } from '../../src/kafka/client.js';
import { ROOT } from './cli.js';

export const BROKERS = (process.env.SLUICE_TEST_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');

export async function ensureKafka(): Promise<void> {
  try {
    await checkKafka({ ...defaults.kafka, brokers: BROKERS }, silentLogger(), 3000);
  } catch {
    await promisify(execFile)('bash', ['scripts/services.sh', 'up'], {
      cwd: ROOT,
      env: { ...process.env, SLUICE_SKIP_MYSQL: '1' },
    });
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on (for "service down" cases). */
export async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface PrivateBroker {
  brokers: string[];
  /** kill -9 the broker. */
  kill(): void;
  /** Starts it again (same ports, same data). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A broker of the test's own (own ports, own data folder) for tests that kill or restart it.
 * The jars of the project's broker are reused when present.
 */
/** Reuses the project's Kafka jars in a private state folder, when they are there (no second Maven fetch). */
async function linkBrokerJars(dir: string): Promise<void> {
  const { mkdirSync, existsSync, symlinkSync } = await import('node:fs');
  const shared = join(ROOT, '.services', 'kafka', 'libs');
  if (existsSync(join(shared, '.pom-sha256'))) {
    mkdirSync(join(dir, 'kafka'), { recursive: true });
    symlinkSync(shared, join(dir, 'kafka', 'libs'));
  }
}

export async function startPrivateBroker(): Promise<PrivateBroker> {
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-broker-'));
  const port = await closedPort();
  let controller = await closedPort();
  while (controller === port) controller = await closedPort();
  await linkBrokerJars(dir);
  const env = {
    ...process.env,
    SLUICE_SERVICES_DIR: dir,
    SLUICE_KAFKA_PORT: String(port),
    SLUICE_KAFKA_CONTROLLER_PORT: String(controller),
    SLUICE_KAFKA_HEAP: '-Xms128m -Xmx256m',
    // One node whatever the shell exports (its files are where kill() looks).
    SLUICE_KAFKA_NODES: '1',
    SLUICE_KAFKA_DEFAULT_RF: '1',
    SLUICE_KAFKA_MIN_ISR: '1',
    SLUICE_SKIP_MYSQL: '1',
  };
  const run = (action: string) => promisify(execFile)('bash', ['scripts/services.sh', action], { cwd: ROOT, env });
  await run('up');
  return {
    brokers: [`127.0.0.1:${port}`],
    kill: () => {
      try {
        process.kill(Number(readFileSync(join(dir, 'kafka', 'kafka.pid'), 'utf8').trim()), 'SIGKILL');
      } catch {
        // already gone
      }
    },
    restart: async () => {
      await run('up');
    },
    stop: async () => {
      await run('down').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether nothing listens on 127.0.0.1:port (binding it works). */
async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** The first of `count` consecutive free ports on 127.0.0.1, none of them in `avoid`. */
async function freePortRange(count: number, avoid: number[] = []): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = await closedPort();
    const range = Array.from({ length: count }, (_, i) => base + i);
    if (base + count - 1 > 65535 || range.some((p) => avoid.includes(p))) continue;
    let free = true;
    for (const p of range.slice(1)) {
      if (!(await portFree(p))) {
        free = false;
        break;
      }
    }
    if (free) return base;
  }
  throw new Error(`no ${count} consecutive free ports on 127.0.0.1`);
}

export interface PrivateCluster {
  /** host:port of node 1..N, in node order (brokers[i - 1] is node i). */
  brokers: string[];
  /** kill -9 node `nodeId` (1..N): broker and controller vanish as in a crash. */
  kill(nodeId: number): void;
  /** Starts node `nodeId` again (same ports, same data) and waits until it answers. */
  restart(nodeId: number): Promise<void>;
  /** Kills every node and deletes the cluster's folder. */
  stop(): Promise<void>;
  /** The pid of node `nodeId`'s JVM, or null when it does not run. */
  pidOf(nodeId: number): number | null;
}

/**
 * A KRaft cluster of the test's own: `nodes` combined broker + controller JVMs started by
 * `SLUICE_KAFKA_NODES=<nodes> scripts/services.sh up` in a temporary state folder, brokers on consecutive free
 * ports, controllers on another free range. Internal topics get min(3, nodes) replicas; topics created without
 * a replication factor get `defaultRf` (default 1) and `minIsr` is the brokers' min.insync.replicas (default 1).
 * The jars of the project's broker are reused when present.
 */
export async function startPrivateCluster(
  nodes = 3,
  opts: { defaultRf?: number; minIsr?: number } = {},
): Promise<PrivateCluster> {
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 5)
    throw new Error(`startPrivateCluster: 1..5 nodes, not ${nodes}`);
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cluster-'));
  const port = await freePortRange(nodes);
  const controller = await freePortRange(
    nodes,
    Array.from({ length: nodes }, (_, i) => port + i),
  );
  await linkBrokerJars(dir);
  const env = {
    ...process.env,
    SLUICE_SERVICES_DIR: dir,
    SLUICE_KAFKA_NODES: String(nodes),
    SLUICE_KAFKA_PORT: String(port),
    SLUICE_KAFKA_CONTROLLER_PORT: String(controller),
    SLUICE_KAFKA_DEFAULT_RF: String(opts.defaultRf ?? 1),
    SLUICE_KAFKA_MIN_ISR: String(opts.minIsr ?? 1),
    SLUICE_KAFKA_HEAP: '-Xms128m -Xmx256m',
    SLUICE_SKIP_MYSQL: '1',
  };
  const run = (...args: string[]) => promisify(execFile)('bash', ['scripts/services.sh', ...args], { cwd: ROOT, env });
  // services.sh's layout: one node keeps the single-broker files, 2+ nodes have kafka/node-<i>/.
  const nodeDir = (id: number) => (nodes === 1 ? join(dir, 'kafka') : join(dir, 'kafka', `node-${id}`));
  const checkId = (id: number) => {
    if (!Number.isInteger(id) || id < 1 || id > nodes) throw new Error(`no node ${id} in a ${nodes}-node cluster`);
  };
  const pidOf = (id: number): number | null => {
    checkId(id);
    try {
      const pid = Number(readFileSync(join(nodeDir(id), 'kafka.pid'), 'utf8').trim());
      // The pid file outlives a killed node and the pid can be reused: check it is this node's broker.
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return cmdline.includes('kafka.Kafka') && cmdline.includes(join(nodeDir(id), 'server.properties')) ? pid : null;
    } catch {
      return null;
    }
  };
  const kill = (id: number) => {
    const pid = pidOf(id);
    if (pid === null) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const stop = async () => {
    // The data goes with the folder: no need for a graceful shutdown.
    for (let id = 1; id <= nodes; id++) kill(id);
    await run('down').catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await run('up');
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    brokers: Array.from({ length: nodes }, (_, i) => `127.0.0.1:${port + i}`),
    kill,
    restart: async (id: number) => {
      checkId(id);
      await run('start-node', String(id));
    },
    stop,
    pidOf,
  };
}
