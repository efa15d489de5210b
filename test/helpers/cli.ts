// Runs the real CLI in a child process, as a user would, and times it.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cliEnv, ROOT } from './fixtures.js';

export { ROOT } from './fixtures.js';
const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
// Resolved here, not from the child's cwd, so the CLI can run from any directory.
const TSX = import.meta.resolve('tsx');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export function runCli(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Promise<CliResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: cliEnv(opts.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: performance.now() - started }));
  });
}
