// Makes sure a broker answers on 127.0.0.1:9092, starting the project's own one when nothing listens.
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { silentLogger } from '../../src/core/logger.js';
import { defaults } from '../../src/core/config.js';
import { checkKafka } from '../../src/kafka/client.js';
import { ROOT } from './cli.js';

export const BROKERS = (process.env.SLUICE_TEST_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');

export async function ensureKafka(): Promise<void> {
  try {
    await checkKafka({ ...defaults.kafka, brokers: BROKERS }, silentLogger(), 3000);
  } catch {
    await promisify(execFile)('bash', ['scripts/services.sh', 'up'], { cwd: ROOT, env: { ...process.env, SLUICE_SKIP_MYSQL: '1' } });
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
export async function startPrivateBroker(): Promise<PrivateBroker> {
  const { mkdtempSync, mkdirSync, existsSync, symlinkSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-broker-'));
  const port = await closedPort();
  let controller = await closedPort();
  while (controller === port) controller = await closedPort();
  const shared = join(ROOT, '.services', 'kafka', 'libs');
  if (existsSync(join(shared, '.pom-sha256'))) {
    mkdirSync(join(dir, 'kafka'), { recursive: true });
    symlinkSync(shared, join(dir, 'kafka', 'libs'));
  }
  const env = {
    ...process.env,
    SLUICE_SERVICES_DIR: dir,
    SLUICE_KAFKA_PORT: String(port),
    SLUICE_KAFKA_CONTROLLER_PORT: String(controller),
    SLUICE_KAFKA_HEAP: '-Xms128m -Xmx256m',
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
