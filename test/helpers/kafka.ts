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
