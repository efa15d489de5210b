// Prisma Client works offline (driver adapter, no engine binary) against the migrated schema.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../src/core/logger.js';
import { migrate } from '../../src/db/migrate.js';
import { createPrisma } from '../helpers/prisma.js';
import { dbConfig, testDatabase } from '../helpers/db.js';

const bytes = (s: string): Uint8Array<ArrayBuffer> => new Uint8Array(Buffer.from(s, 'utf8'));
const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

describe('Prisma Client over the MariaDB adapter', () => {
  it(
    'writes and reads the ledger; keys differing only in case, accents or ' + 'trailing spaces stay distinct',
    async (t) => {
      const url = await testDatabase(t);
      await migrate(dbConfig(url), silentLogger());
      const prisma = await createPrisma(dbConfig(url));
      t.after(() => prisma.$disconnect());
      const now = new Date();
      const keys = ['Straße/../ü', 'STRASSE/../Ü', 'strasse/../u', 'a', 'a ', 'it\'s "quoted" \\', '🦀'.repeat(512)];
      for (const key of keys) {
        await prisma.result.create({
          data: {
            pipeline: 'demo',
            taskKey: bytes(key),
            output: { entities: ['x'] },
            startedAt: now,
            finishedAt: now,
            durationMs: 5,
          },
        });
      }
      const found = await prisma.result.findMany({ where: { pipeline: 'demo' } });
      assert.deepEqual(found.map((r) => text(r.taskKey)).sort(), [...keys].sort());
      const one = await prisma.result.findUnique({
        where: { pipeline_taskKey: { pipeline: 'demo', taskKey: bytes('a ') } },
      });
      assert.deepEqual(one?.output, { entities: ['x'] });
      await assert.rejects(
        prisma.result.create({
          data: { pipeline: 'demo', taskKey: bytes('🦀'.repeat(513)), startedAt: now, finishedAt: now, durationMs: 1 },
        }),
        /too long|exceeds/i,
      );
    },
  );
});
