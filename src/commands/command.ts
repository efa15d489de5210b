// What every CLI command looks like. cli.ts parses argv, loads config, makes the root logger and the
// Shutdown, then calls `run`; commands never touch process.* themselves.

import type { ParseArgsConfig } from 'node:util';
import type { SluiceConfig } from '../config/config.js';
import type { Env } from '../config/load.js';
import type { Logger } from '../core/logger.js';
import type { Shutdown } from '../core/shutdown.js';
import type { ProgressSink } from '../producer/progress.js';
import type { TerminalPanel } from './terminal-panel.js';

export type OptionSpecs = NonNullable<ParseArgsConfig['options']>;
export type OptionValues = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface CommandContext {
  config: SluiceConfig;
  configFile: string | null;
  log: Logger;
  /** Writes one line of command output to stdout. */
  out: (line: string) => void;
  /** Where progress bars go (stderr); `tty` says whether it is a terminal. */
  progress: ProgressSink;
  /** The live panel at the bottom of the terminal (demo, work, run, fetch in a TTY), or null. */
  panel: TerminalPanel | null;
  env: Env;
  cwd: string;
  shutdown: Shutdown;
  values: OptionValues;
  positionals: string[];
}

export interface Command {
  name: string;
  summary: string;
  /** Text after `Usage: sluice <name> `. */
  usage: string;
  /** Extra help lines (arguments, examples). */
  details?: string[];
  options: OptionSpecs;
  /** Option descriptions for --help, by option name. */
  optionHelp: Record<string, string>;
  run(ctx: CommandContext): Promise<number>;
}
