// A worker on a pipeline of the test's own: a source table holding the keys it is given, a spool folder,
// and teardown registered where each is made.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { defaults, mergeLayers, type SluiceConfig, type StageConfig } from '../../src/config/config.js';
import { validateConfig } from '../../src/config/validate.js';
import { silentLogger } from '../../src/core/logger.js';
import { spoolPaths } from '../../src/spool/layout.js';
import type { SpoolItem } from '../../src/spool/segment.js';
import { SpoolWriter } from '../../src/spool/writer.js';
import { startWorker, type WorkerHandle } from '../../src/worker/worker.js';
import { randomName } from './db.js';

export interface WorkSetup {
  name: string;
  config: SluiceConfig;
  /** Adds the keys to the source table (unless `inSource` is false) and spools them, `perSegment` per segment. */
  spool(keys: Array<string | number>, opts?: { perSegment?: number; inSource?: boolean }): Promise<void>;
  start(exitWhenIdle?: boolean): Promise<WorkerHandle>;
  count(table: string, where?: string, params?: unknown[]): Promise<number>;
}

interface Teardown {
  after(fn: () => Promise<void> | void): void;
}

export async function workSetup(
  t: Teardown,
  db: Connection,
  url: string,
  stages: StageConfig[],
  worker: Partial<SluiceConfig['worker']> = {},
  spool: Partial<SluiceConfig['spool']> = {},
): Promise<WorkSetup> {
  const name = randomName('w');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-work-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await db.query(`CREATE TABLE \`${name}\` (id VARCHAR(700) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY)`);
  const config = validateConfig(
    mergeLayers(structuredClone(defaults), {
      database: { url },
      worker: { pollMs: 20, ...worker },
      spool: { dir, ...spool },
      pipelines: { [name]: { topic: `t-${name}`, source: { table: name, key: 'id', columns: [] }, stages } },
    }),
  );
  let offset = 0;
  return {
    name,
    config,
    spool: async (keys, opts = {}) => {
      if (opts.inSource !== false && keys.length > 0)
        await db.query(`INSERT IGNORE INTO \`${name}\` (id) VALUES ?`, [keys.map((k) => [String(k)])]);
      const writer = new SpoolWriter(spoolPaths(dir, name), opts.perSegment ?? 10);
      await writer.open();
      const items: SpoolItem[] = keys.map((key) => ({
        partition: 0,
        offset: String(offset++),
        task: { v: 1, pipeline: name, key, payload: { n: key }, attempt: 1, runId: 'r', producedAt: '' },
      }));
      await writer.writeItems(0, items);
    },
    start: async (exitWhenIdle = true) => {
      const w = await startWorker({ config, pipeline: name, log: silentLogger(), exitWhenIdle });
      t.after(async () => {
        await w.stop().catch(() => {});
      });
      return w;
    },
    count: async (table, where = '', params = []) => {
      const [rows] = await db.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${table} WHERE pipeline = ? ${where}`, [
        name,
        ...params,
      ]);
      return Number(rows[0]?.n);
    },
  };
}
