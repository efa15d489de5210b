// `sluice dashboard` (npm run dashboard): the live web page for every pipeline in the config, and its JSON API.

import { startDashboard } from '../dashboard/server.js';
import type { Command } from './command.js';

export const dashboardCommand: Command = {
  name: 'dashboard',
  summary: 'a live web page (and JSON API) for every pipeline: progress, stages, resources, machines, quarantine and requeue',
  usage: '[--port <port>] [--host <address>] [--token <token>] [--read-only]',
  details: [
    'Loopback (127.0.0.1) by default; bound to another address every request needs the token.',
    'Requeue, the only write, needs the token or a same-origin request; --read-only turns it off.',
  ],
  options: {},
  optionHelp: {},
  async run({ config, log, out, shutdown }) {
    const d = await startDashboard({ config, log, shutdown });
    out(`dashboard: ${d.url}${config.dashboard.token === '' ? '' : '?token=<token>'}`);
    await new Promise<void>((resolve) => shutdown.onStop(() => resolve()));
    await d.close();
    return 0;
  },
};
