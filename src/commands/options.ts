// The command line's options: each command's own, the global ones, and the configuration settings that
// take a flag (declared in config/schema.ts, so a flag has the same bounds as the file and is named in
// errors); and the help text made from them.

import { parseArgs } from 'node:util';
import { flagSettings, type Setting } from '../config/settings.js';
import type { ConfigFlags } from '../config/load.js';
import { UsageError } from '../core/errors.js';
import type { Command, OptionSpecs, OptionValues } from './command.js';

const GLOBAL_OPTIONS: OptionSpecs = {
  config: { type: 'string', short: 'c' },
  help: { type: 'boolean', short: 'h' },
};

const GLOBAL_HELP: Record<string, string> = {
  config: 'config file (default: sluice.config.{ts,mts,js,mjs} here or in the nearest parent; env SLUICE_CONFIG)',
  help: 'show help',
};

function settingHelp(s: Setting): string {
  const shown = s.shownDefault ?? (s.defaultValue === undefined ? undefined : JSON.stringify(s.defaultValue));
  return (
    `${s.doc} (${s.path}${shown === undefined ? '' : `, default ${shown}`}` +
    `${s.env === undefined ? '' : `, env ${s.env}`})`
  );
}

/** Setting flags: the global ones, or a command's own. */
function settingOptions(command?: string): { specs: OptionSpecs; help: Record<string, string> } {
  const list = flagSettings(command).filter((s) => command === undefined || s.commands !== undefined);
  return {
    specs: Object.fromEntries(
      list.map((s) => [s.flag!, { type: s.input === 'bool' ? ('boolean' as const) : ('string' as const) }]),
    ),
    help: Object.fromEntries(list.map((s) => [s.flag!, settingHelp(s)])),
  };
}

function optionLines(specs: OptionSpecs, help: Record<string, string>): string[] {
  return Object.entries(specs).map(([name, spec]) => {
    const flag =
      `${spec.short === undefined ? '    ' : `-${spec.short}, `}--${name}` +
      `${spec.type === 'string' ? ' <value>' : ''}`;
    return `  ${flag.padEnd(30)} ${help[name] ?? ''}`;
  });
}

export function mainHelp(commands: readonly Command[]): string {
  const g = settingOptions();
  return [
    'sluice: get a large, failure-prone batch job done fast and completely.',
    '',
    'Usage: sluice <command> [options]       (npx sluice <command> in a ' +
      'project; npm run <command> -- in this repository)',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`),
    '',
    'Global options:',
    ...optionLines({ ...GLOBAL_OPTIONS, ...g.specs }, { ...GLOBAL_HELP, ...g.help }),
    '',
    "Run 'sluice <command> --help' for a command's options.",
  ].join('\n');
}

export function commandHelp(c: Command): string {
  const own = settingOptions(c.name);
  const g = settingOptions();
  return [
    `Usage: sluice ${c.name} ${c.usage}`.trimEnd(),
    '',
    c.summary,
    ...(c.details === undefined ? [] : ['', ...c.details.map((d) => `  ${d}`)]),
    ...(Object.keys(c.options).length + Object.keys(own.specs).length === 0
      ? []
      : ['', 'Options:', ...optionLines({ ...c.options, ...own.specs }, { ...c.optionHelp, ...own.help })]),
    '',
    'Global options:',
    ...optionLines({ ...GLOBAL_OPTIONS, ...g.specs }, { ...GLOBAL_HELP, ...g.help }),
  ].join('\n');
}

/** The command's arguments, and the flags that set configuration (to loadConfig). */
export function parseCommandLine(
  c: Command,
  argv: string[],
): { values: OptionValues; positionals: string[]; flags: ConfigFlags } {
  try {
    const options = { ...GLOBAL_OPTIONS, ...settingOptions().specs, ...settingOptions(c.name).specs, ...c.options };
    const r = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    const values = r.values as OptionValues;
    const flags: ConfigFlags = { config: values.config as string | undefined };
    for (const s of flagSettings(c.name)) {
      const v = values[s.flag!];
      if (typeof v === 'string') flags[s.flag!] = v;
      else if (v === true) flags[s.flag!] = 'true';
    }
    return { values, positionals: r.positionals, flags };
  } catch (err) {
    const msg = err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err);
    const short = msg.replace(/^Unknown option/, 'unknown option').replace(/\. To specify a positional.*$/, '');
    throw new UsageError(short, `see: sluice ${c.name} --help`);
  }
}
