// Prisma Client works offline (driver adapter, no engine binary) against the migrated schema.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../src/core/logger.js';
import { migrate } from '../src/db/migrate.js';
import { createPrisma } from '../src/db/prisma.js';
import { dbConfig, testDatabase } from './helpers/db.js';

describe('Prisma Client over the MariaDB adapter', () => {
  it('writes and reads the ledger tables, keeping Unicode keys that differ only in case apart', async (t) => {
    const url = await testDatabase(t);
    await migrate(dbConfig(url), silentLogger());
    const prisma = await createPrisma(dbConfig(url));
    t.after(() => prisma.$disconnect());
    const now = new Date();
    const keys = ['Straße/../ü', 'STRASSE/../Ü', 'straße/../ü', "it's \"quoted\" \\ ", 'k'.repeat(512)];
    for (const taskKey of keys) {
      await prisma.result.create({
        data: { pipeline: 'demo', taskKey, output: { entities: ['x'] }, startedAt: now, finishedAt: now, durationMs: 5 },
      });
    }
    const found = await prisma.result.findMany({ where: { pipeline: 'demo' }, orderBy: { taskKey: 'asc' } });
    assert.deepEqual(found.map((r) => r.taskKey).sort(), [...keys].sort());
    const one = await prisma.result.findUnique({ where: { pipeline_taskKey: { pipeline: 'demo', taskKey: 'straße/../ü' } } });
    assert.deepEqual(one?.output, { entities: ['x'] });
    await assert.rejects(
      prisma.result.create({ data: { pipeline: 'demo', taskKey: 'k'.repeat(513), startedAt: now, finishedAt: now, durationMs: 1 } }),
      /too long|Data too long|exceeds/i,
    );
  });
});
