// A second MariaDB server of the test's own (own port, own data folder), for tests that kill and restart
// the database in the middle of a run without disturbing any other test.
import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { closedPort } from './kafka.js';

export interface PrivateMariaDB {
  /** mysql://root@127.0.0.1:<port>/<database> */
  url(database: string): string;
  kill(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function waitReady(port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const c = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', connectTimeout: 1000 });
      await c.end();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export async function startPrivateMariaDB(): Promise<PrivateMariaDB> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-mariadb-'));
  const data = join(dir, 'data');
  const port = await closedPort();
  await promisify(execFile)('mariadb-install-db', [
    '--no-defaults',
    `--datadir=${data}`,
    '--user=root',
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
  ]);
  let child: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    child = spawn(
      'mariadbd',
      [
        '--no-defaults',
        `--datadir=${data}`,
        '--user=root',
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        `--socket=${join(dir, 'sock')}`,
        `--pid-file=${join(dir, 'pid')}`,
        '--skip-name-resolve',
        '--innodb-buffer-pool-size=64M',
        `--log-error=${join(dir, 'error.log')}`,
      ],
      { stdio: 'ignore' },
    );
    await waitReady(port);
  };
  const kill = async (): Promise<void> => {
    const c = child;
    child = null;
    if (c === null || c.exitCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  };
  await start();
  return {
    url: (database) => `mysql://root@127.0.0.1:${port}/${database}`,
    kill,
    restart: start,
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
