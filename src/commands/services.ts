// `sluice services [up|down|status|reset|logs]`: runs scripts/services.sh, which owns the local broker.

import { spawn } from 'node:child_process';
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../core/errors.js';
import type { Command } from './command.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/services.sh', import.meta.url));
const ACTIONS = ['up', 'down', 'status', 'reset', 'logs'];

export const servicesCommand: Command = {
  name: 'services',
  summary:
    'start, stop or check the local Kafka broker and MariaDB (no Docker ' +
    'needed; MariaDB 11.4 from Maven Central when none is installed)',
  usage: '[up|down|status|reset|logs]',
  details: [
    'up      start what is not running and wait until it answers (default; does nothing when all is up)',
    'down    stop the Kafka broker started by `up` (MariaDB is left running)',
    'status  one line per service; exits 1 when one is down',
    'reset   stop Kafka and delete its topics and offsets',
    'logs    print the end of the broker log',
  ],
  options: {},
  optionHelp: {},
  async run({ positionals, env, cwd }) {
    const action = positionals[0] ?? 'up';
    if (!ACTIONS.includes(action))
      throw new UsageError(`unknown services action '${action}' (use: ${ACTIONS.join(', ')})`);
    return new Promise<number>((resolve, reject) => {
      // Installed as a package, the state (jars, data, logs) goes in the user's project, not in node_modules.
      const installed = SCRIPT.includes(`${sep}node_modules${sep}`);
      const state = env.SLUICE_SERVICES_DIR ?? (installed ? join(cwd, '.sluice-services') : undefined);
      const child = spawn('bash', [SCRIPT, action, ...positionals.slice(1)], {
        stdio: 'inherit',
        env: { ...env, ...(state === undefined ? {} : { SLUICE_SERVICES_DIR: state }) },
      });
      child.on('error', reject);
      child.on('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
    });
  },
};
