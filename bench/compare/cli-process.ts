// One side's command line as a process of its own: `node <side.entry> <command>` (worktree.ts) in the side's
// folder, under GNU time so that its peak RSS and CPU are the process's own (the harness seeds and watches
// from here, and none of that is counted). Signals go to the node process, not to time, which would die of
// them and leave node behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, readFileSync, closeSync } from 'node:fs';
import type { Side } from './worktree.js';

export interface Exit {
  code: number | null;
  peakRssMb: number;
  /** User + system CPU of the process. */
  cpuSeconds: number;
  log: string;
}

export interface CliProcess {
  readonly child: ChildProcess;
  readonly startedAt: number;
  readonly exited: Promise<Exit>;
  /** SIGTERM (or another signal) to the sluice process itself. */
  signal(sig?: NodeJS.Signals): void;
}

const TIME = '/usr/bin/time';

/** Every side process not yet exited: what an interrupted harness stops before it cleans up. */
const live = new Set<CliProcess>();

/** Kills every side process still running (the harness was interrupted). */
export function killAll(): void {
  for (const p of live) {
    try {
      process.kill(-p.child.pid!, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

/** The environment a side runs with: nothing of the caller's SLUICE_* or DATABASE_URL leaks in. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'TMPDIR', 'LANG'];
  const env: NodeJS.ProcessEnv = {};
  for (const k of keep) if (process.env[k] !== undefined) env[k] = process.env[k];
  return { ...env, NODE_ENV: 'production', ...extra };
}

export function startCli(
  side: Side,
  args: string[],
  opts: { config: string; databaseUrl: string; brokers: string; logFile: string; nodeFlags?: string[] },
): CliProcess {
  if (!existsSync(TIME)) throw new Error('bench:compare needs GNU time at /usr/bin/time (apt-get install time)');
  const timeFile = `${opts.logFile}.time`;
  const out = openSync(opts.logFile, 'a');
  const node = [
    process.execPath,
    ...(opts.nodeFlags ?? []),
    ...side.entry,
    ...args,
    '--config',
    opts.config,
    '--log-level',
    'warn',
  ];
  // Its own process group: a Ctrl-C meant for the harness is the harness's to pass on (killAll).
  const child = spawn(TIME, ['-f', '%M %U %S', '-o', timeFile, ...node], {
    detached: true,
    cwd: side.dir,
    env: cleanEnv({ DATABASE_URL: opts.databaseUrl, SLUICE_KAFKA_BROKERS: opts.brokers }),
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  const startedAt = performance.now();
  const exited = new Promise<Exit>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      const [rss, user, sys] = (existsSync(timeFile) ? readFileSync(timeFile, 'utf8') : '')
        .trim()
        .split('\n')
        .pop()!
        .split(' ')
        .map(Number);
      resolve({
        code,
        peakRssMb: Math.round((rss ?? 0) / 1024),
        cpuSeconds: (user ?? 0) + (sys ?? 0),
        log: opts.logFile,
      });
    });
  });
  const p: CliProcess = {
    child,
    startedAt,
    exited,
    signal(sig = 'SIGTERM') {
      // To node itself (time would die of it and leave node running); before node exists, to the whole group.
      const pid = nodePid(child);
      try {
        if (pid !== undefined) process.kill(pid, sig);
        else if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        // gone already
      }
    },
  };
  live.add(p);
  void exited.finally(() => live.delete(p)).catch(() => {});
  return p;
}

/** The node process that time started (its only child). */
function nodePid(time: ChildProcess): number | undefined {
  try {
    const children = readFileSync(`/proc/${time.pid}/task/${time.pid}/children`, 'utf8').trim();
    const pid = Number(children.split(' ')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Runs a command to its end; a non-zero exit is an error that names the log to read. */
export async function runCli(side: Side, args: string[], opts: Parameters<typeof startCli>[2]): Promise<Exit> {
  const exit = await startCli(side, args, opts).exited;
  if (exit.code !== 0) throw new Error(failedMessage(side, args[0] ?? '', exit));
  return exit;
}

export const failedMessage = (side: Side, command: string, exit: Exit): string =>
  `${side.label}: sluice ${command} exited ${exit.code}; see ${exit.log}:\n${tail(exit.log)}`;

function tail(file: string, lines = 8): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
