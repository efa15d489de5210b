// `sluice migrate` (npm run db:migrate): create the database if needed and apply pending migrations.

import { parseDatabaseUrl } from '../db/database-url.js';
import { migrate, migrationState } from '../db/migrate.js';
import { openPool, assertDatabaseUrl } from '../db/pool.js';
import type { Command } from './command.js';
import { childLogger } from '../core/logger.js';

export const migrateCommand: Command = {
  name: 'migrate',
  summary: "apply prisma/migrations to the database (creates it), recorded as Prisma's migrate deploy does",
  usage: '[--status]',
  options: { status: { type: 'boolean' } },
  optionHelp: { status: 'only report applied and pending migrations; change nothing (exit 1 if any pending)' },
  async run({ config, log, out, values }) {
    assertDatabaseUrl(config.database);
    const { database } = parseDatabaseUrl(config.database.url);
    const mlog = childLogger(log, { component: 'migrate' });
    if (values.status === true) {
      const pool = await openPool(config.database, { poolSize: 1 });
      try {
        const s = await migrationState(pool);
        out(`database ${database}: ${s.applied.length} applied, ${s.pending.length} pending`);
        for (const n of s.pending) out(`  pending   ${n}`);
        for (const n of s.failed) out(`  failed    ${n}`);
        for (const n of s.modified) out(`  modified  ${n}`);
        return s.pending.length + s.failed.length + s.modified.length === 0 ? 0 : 1;
      } finally {
        await pool.end();
      }
    }
    const r = await migrate(config.database, mlog);
    if (r.newlyApplied.length === 0) {
      out(`database ${database} is up to date (${r.applied.length} migration(s) applied, nothing to do)`);
    } else {
      out(`database ${database}: applied ${r.newlyApplied.length} migration(s): ${r.newlyApplied.join(', ')}`);
    }
    return 0;
  },
};
