#!/usr/bin/env node
// sluice's command line: argv -> config -> command. The only file that touches process.* (argv, env,
// signals, exit codes, stdout/stderr).

import type { Command } from './commands/command.js';
import { commandHelp, mainHelp, parseCommandLine } from './commands/options.js';
import { dashboardCommand } from './commands/dashboard.js';
import { demoCommand } from './commands/demo.js';
import { doctorCommand } from './commands/doctor.js';
import { fetchCommand } from './commands/fetch.js';
import { initCommand } from './commands/init.js';
import { inspectCommand } from './commands/inspect.js';
import { migrateCommand } from './commands/migrate.js';
import { produceCommand } from './commands/produce.js';
import { servicesCommand } from './commands/services.js';
import { statusCommand } from './commands/status.js';
import { runCommand, workCommand } from './commands/work.js';
import { loadConfig } from './config/load.js';
import { validateConfig } from './config/validate.js';
import { EXIT, SluiceError, UsageError } from './core/errors.js';
import { setHintStyle } from './core/hints.js';
import { childLogger, createLogger } from './core/logger.js';
import { TerminalPanel } from './commands/terminal-panel.js';
import { Shutdown } from './core/shutdown.js';

const COMMANDS: Command[] = [
  initCommand,
  servicesCommand,
  migrateCommand,
  doctorCommand,
  produceCommand,
  fetchCommand,
  workCommand,
  runCommand,
  statusCommand,
  inspectCommand,
  dashboardCommand,
  demoCommand,
];

/** Commands that keep a live panel at the bottom of a terminal. */
const PANEL_COMMANDS = new Set(['demo', 'work', 'run', 'fetch']);

/** Commands that do not read sluice's configuration (they must work while it is broken). */
const CONFIG_FREE = new Set(['services', 'init']);

/**
 * `npx sluice work` and `npm run` start sluice under `sh -c`; a SIGTERM to npm kills that shell and not
 * sluice. The parent going away is therefore taken as a stop request too: sluice drains and exits instead of
 * lingering as an orphan. (Under systemd or Docker, start the bin itself so the signal reaches it first.)
 */
function watchParent(stop: () => void): NodeJS.Timeout {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (parent !== 1 && process.ppid !== parent) {
      clearInterval(timer);
      stop();
    }
  }, 500);
  timer.unref();
  return timer;
}

/** Inside sluice's own repository (`npm run <script>`), hints name npm scripts; elsewhere the installed bin. */
function hintStyle(): 'npm' | 'npx' {
  return process.env.npm_package_name === 'sluice' &&
    process.env.npm_lifecycle_event !== undefined &&
    process.env.npm_lifecycle_event !== 'npx'
    ? 'npm'
    : 'npx';
}

async function main(argv: string[]): Promise<number> {
  setHintStyle(hintStyle());
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${mainHelp(COMMANDS)}\n`);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) {
    throw new UsageError(
      `unknown command '${name}' (commands: ${COMMANDS.map((c) => c.name).join(', ')})`,
      'see: sluice --help',
    );
  }
  const { values, positionals, flags } = parseCommandLine(command, rest);
  if (values.help === true) {
    process.stdout.write(`${commandHelp(command)}\n`);
    return EXIT.ok;
  }
  const { config, file } = CONFIG_FREE.has(command.name)
    ? { config: validateConfig({}), file: null }
    : await loadConfig({ cwd: process.cwd(), env: process.env, flags });
  const tty = process.stderr.isTTY === true;
  const panel =
    PANEL_COMMANDS.has(command.name) && tty && config.log.panel !== false && config.log.pretty !== false
      ? new TerminalPanel(process.stderr)
      : null;
  const log = createLogger({ ...config.log, isTTY: tty, destination: panel ?? undefined });
  const shutdown = new Shutdown();
  const onSignal = (sig: NodeJS.Signals): void => {
    const state = shutdown.requestStop(sig);
    log.warn({ signal: sig, state }, state === 'forced' ? 'second signal: forcing stop' : 'signal received: draining');
    if (state === 'forced') {
      // Handlers got the abort; whatever still runs after a moment is abandoned. Every stage is written so
      // that this loses nothing (offsets and dispatch records trail the work they describe).
      setTimeout(() => process.exit(EXIT.interrupted), 1000).unref();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const orphanWatch = watchParent(() => onSignal('SIGTERM'));
  try {
    const code = await command.run({
      config,
      configFile: file,
      log: childLogger(log, { command: command.name }),
      out: (line) => process.stdout.write(`${line}\n`),
      progress: { tty: process.stderr.isTTY === true, write: (text) => process.stderr.write(text) },
      panel,
      env: process.env,
      cwd: process.cwd(),
      shutdown,
      values,
      positionals,
    });
    // A forced stop (a second signal) is an interruption whatever the command made of it: exit 130.
    return shutdown.state === 'forced' ? EXIT.interrupted : code;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    clearInterval(orphanWatch);
    panel?.close();
    log.flush();
  }
}

/**
 * Exit once stdout and stderr are flushed, even if something (user stage code, a half-closed client) left a handle
 * open.
 */
function exitAfterFlush(code: number): void {
  process.exitCode = code;
  // A stream that never drains must not keep a failed process alive either.
  setTimeout(() => process.exit(code), 2000).unref();
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

main(process.argv.slice(2)).then(exitAfterFlush, (err: unknown) => {
  if (err instanceof SluiceError) {
    const hint = err.hint === undefined ? '' : ` — ${err.hint}`;
    process.stderr.write(`sluice: ${err.message}${hint}\n`);
    exitAfterFlush(err.exitCode);
  } else {
    // A bug, not a condition we know: show the stack so it can be reported.
    process.stderr.write(
      `sluice: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    exitAfterFlush(EXIT.failed);
  }
});
