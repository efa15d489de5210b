// Prisma Client over the MariaDB driver adapter (works with MySQL 8 too), for the readable queries
// (status, reports). Hot paths use mysql2 directly (see pool.ts): it is several times faster for pages of
// thousands of rows and bulk upserts.

import { PrismaMariaDb } from '@prisma/adapter-mariadb';
import { PrismaClient } from '../../generated/prisma/client.js';
import type { DatabaseConfig } from '../../src/config/config.js';
import { parseDatabaseUrl } from '../../src/db/database-url.js';
import { openPool } from '../../src/db/pool.js';

export type { PrismaClient };

/**
 * Creates a Prisma client after a mysql2 preflight: Prisma's own pool waits ~20 s on a wrong password
 * and then reports a pool timeout, which hides the real problem.
 */
export async function createPrisma(db: DatabaseConfig): Promise<PrismaClient> {
  const probe = await openPool(db, { poolSize: 1 });
  await probe.end();
  const c = parseDatabaseUrl(db.url);
  const adapter = new PrismaMariaDb({
    host: c.host,
    port: c.port,
    user: c.user,
    password: c.password,
    database: c.database,
    connectionLimit: Math.min(db.poolSize, 5),
    connectTimeout: db.connectTimeoutMs,
    acquireTimeout: db.connectTimeoutMs + 2000,
  });
  return new PrismaClient({ adapter });
}
