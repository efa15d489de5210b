// `sluice dashboard` (npm run dashboard): the live web page for every pipeline in the config, and its JSON API.

import { startDashboard } from '../dashboard/server.js';
import type { Command } from './command.js';

export const dashboardCommand: Command = {
  name: 'dashboard',
  summary:
    'a live web page (and JSON API) for every pipeline: progress, stages, resources, machines, quarantine and requeue',
  usage: '[--port <port>] [--host <address>] [--allowed-hosts <names>] [--token-file <file>] [--read-only]',
  details: [
    'Loopback (127.0.0.1) by default; bound to another address it needs a token and the host names browsers use.',
    'Open /?token=<token> once: the token becomes a session cookie. Scripts send Authorization: Bearer <token>.',
    'Requeue, the only write, needs the page of this dashboard or the token; --read-only turns it off.',
  ],
  options: {},
  optionHelp: {},
  async run({ config, log, out, shutdown, values }) {
    if (typeof values.token === 'string')
      log.warn(
        {},
        'a --token flag is visible to every user of this machine (ps): use --token-file or SLUICE_DASHBOARD_TOKEN',
      );
    const d = await startDashboard({ config, log, shutdown });
    const noToken = config.dashboard.token === '' && config.dashboard.tokenFile === '';
    out(`dashboard: ${d.url}${noToken ? '' : '?token=<token> (once: it becomes a session cookie)'}`);
    await new Promise<void>((resolve) => shutdown.onStop(() => resolve()));
    await d.close();
    return 0;
  },
};
