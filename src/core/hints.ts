// Hints name the command the user actually has: `npx sluice migrate` in their own project (the installed
// bin), `npm run db:migrate` inside sluice's own repository. cli.ts decides which, once, at start.

export type HintStyle = 'npx' | 'npm';

let style: HintStyle = 'npx';

export function setHintStyle(s: HintStyle): void {
  style = s;
}

/** The npm script of the repository for each command, where it differs from the command's name. */
const NPM_SCRIPTS: Record<string, string> = { migrate: 'db:migrate' };

/** How to run `sluice <command> <args>` here, e.g. run('produce', '--pipeline demo'). */
export function run(command: string, args = ''): string {
  if (style === 'npm') {
    const script = NPM_SCRIPTS[command] ?? command;
    return `npm run ${script}${args === '' ? '' : ` -- ${args}`}`;
  }
  return `npx sluice ${command}${args === '' ? '' : ` ${args}`}`;
}
