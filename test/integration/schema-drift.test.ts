// The migrated database must be exactly what prisma/schema.prisma describes, so the SQL migrations and
// the schema (the source of truth) can never drift apart unnoticed.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { silentLogger } from '../../src/core/logger.js';
import { DEMO_MIGRATIONS_DIR, migrate } from '../../src/db/migrate.js';
import { ROOT } from '../helpers/cli.js';
import { dbConfig, testDatabase } from '../helpers/db.js';
import { fileTeardown } from '../helpers/fixtures.js';
import { expectedTables } from '../helpers/prisma-schema.js';

const schema = readFileSync(`${ROOT}/prisma/schema.prisma`, 'utf8');
const normalise = (t: string): string => t.toLowerCase().replace(/^(bigint|int|smallint|mediumint)\(\d+\)/, '$1');

interface Actual {
  tables: string[];
  columns: RowDataPacket[];
  indexes: Array<{ table: string; name: string; unique: boolean; columns: string[] }>;
  jsonChecks: Set<string>;
}

async function describeDatabase(conn: Connection): Promise<Actual> {
  const [tables] = await conn.query<RowDataPacket[]>(
    'SELECT table_name AS t FROM information_schema.tables WHERE table_schema ' +
      "= DATABASE() AND table_type = 'BASE TABLE'",
  );
  const [columns] = await conn.query<RowDataPacket[]>(
    `SELECT table_name AS t, column_name AS c, column_type AS type, ` +
      `is_nullable AS nullable, extra, collation_name AS coll
     FROM information_schema.columns WHERE table_schema = DATABASE() ` +
      `ORDER BY table_name, ordinal_position`,
  );
  const [stats] = await conn.query<RowDataPacket[]>(
    `SELECT table_name AS t, index_name AS i, non_unique AS nu, column_name AS c
     FROM information_schema.statistics WHERE table_schema = DATABASE() ORDER BY table_name, index_name, seq_in_index`,
  );
  const indexes = new Map<string, Actual['indexes'][number]>();
  for (const s of stats) {
    const key = `${s.t}.${s.i}`;
    const entry = indexes.get(key) ?? {
      table: s.t as string,
      name: s.i as string,
      unique: Number(s.nu) === 0,
      columns: [],
    };
    entry.columns.push(s.c as string);
    indexes.set(key, entry);
  }
  // MariaDB stores JSON as LONGTEXT guarded by a json_valid() check; MySQL 8 has a real JSON type.
  const jsonChecks = new Set<string>();
  const [hasChecks] = await conn.query<RowDataPacket[]>(
    'SELECT 1 FROM information_schema.tables WHERE table_schema = ' +
      "'information_schema' AND table_name = 'CHECK_CONSTRAINTS'",
  );
  if (hasChecks.length > 0) {
    const [checks] = await conn.query<RowDataPacket[]>(
      'SELECT * FROM information_schema.check_constraints WHERE constraint_schema = DATABASE()',
    );
    for (const c of checks) {
      const col = /json_valid\(`([^`]+)`\)/i.exec(String(c.CHECK_CLAUSE ?? c.check_clause))?.[1];
      if (col !== undefined) jsonChecks.add(`${c.TABLE_NAME ?? c.table_name}.${col}`);
    }
  }
  return { tables: tables.map((r) => r.t as string), columns, indexes: [...indexes.values()], jsonChecks };
}

/** Every difference between what the schema describes and what the database has; empty when in sync. */
function schemaDrift(schemaText: string, actual: Actual): string[] {
  const diffs: string[] = [];
  const expected = expectedTables(schemaText);
  const want = new Set([...expected.map((t) => t.table), '_sluice_migrations']);
  for (const t of actual.tables) if (!want.has(t)) diffs.push(`table ${t} is in the database but not in schema.prisma`);
  for (const t of expected) {
    if (!actual.tables.includes(t.table)) {
      diffs.push(`table ${t.table} (model ${t.model}) is missing from the database`);
      continue;
    }
    const cols = actual.columns.filter((c) => c.t === t.table);
    for (const c of cols)
      if (!t.columns.some((w) => w.name === c.c)) diffs.push(`column ${t.table}.${c.c} is not in schema.prisma`);
    for (const w of t.columns) {
      const where = `${t.table}.${w.name}`;
      const got = cols.find((c) => c.c === w.name);
      if (got === undefined) {
        diffs.push(`column ${where} is missing from the database`);
        continue;
      }
      const type = normalise(String(got.type));
      const jsonOk = w.isJson && type === 'longtext' && actual.jsonChecks.has(where);
      if (type !== w.type && !jsonOk) diffs.push(`column ${where}: database has ${type}, schema says ${w.type}`);
      if ((got.nullable === 'YES') !== w.nullable)
        diffs.push(`column ${where}: nullability differs (schema: ${w.nullable ? 'optional' : 'required'})`);
      if (/auto_increment/i.test(String(got.extra)) !== w.autoIncrement)
        diffs.push(`column ${where}: auto_increment differs`);
    }
    const gotIdx = actual.indexes.filter((i) => i.table === t.table);
    const fmt = (i: { name: string; unique: boolean; columns: string[] }): string =>
      `${i.unique ? 'unique ' : ''}${i.name}(${i.columns.join(',')})`;
    const gotSet = new Set(gotIdx.map(fmt));
    const wantSet = new Set(t.indexes.map(fmt));
    for (const i of wantSet) if (!gotSet.has(i)) diffs.push(`index ${t.table}.${i} is missing from the database`);
    for (const i of gotSet) if (!wantSet.has(i)) diffs.push(`index ${t.table}.${i} is not in schema.prisma`);
  }
  return diffs;
}

describe('schema.prisma and the migrations', () => {
  let actual: Actual;

  const file = fileTeardown();
  before(async () => {
    const url = await testDatabase(file);
    await migrate(dbConfig(url), silentLogger());
    await migrate(dbConfig(url), silentLogger(), DEMO_MIGRATIONS_DIR);
    const conn = await mysql.createConnection(url);
    try {
      actual = await describeDatabase(conn);
    } finally {
      await conn.end();
    }
  });

  it('describe the same tables, columns (type, nullability) and indexes: no drift', () => {
    assert.deepEqual(schemaDrift(schema, actual), []);
  });

  it('the check notices a changed column type, a new optional field, a dropped index and a new model', () => {
    const drifted = schema
      .replace(
        'taskKey    Bytes    @map("task_key") @db.VarBinary(2048)',
        'taskKey    Bytes    @map("task_key") @db.VarBinary(2000)',
      )
      .replace(
        '  attempts   Int      @default(1)\n',
        '  attempts   Int      @default(1)\n  note       String?  @db.VarChar(20)\n',
      )
      .replace('  @@index([pipeline, finishedAt])\n', '')
      .concat('\nmodel Extra {\n  id Int @id\n  @@map("sluice_extra")\n}\n');
    assert.deepEqual(schemaDrift(drifted, actual).sort(), [
      'column sluice_results.note is missing from the database',
      'column sluice_results.task_key: database has varbinary(2048), schema says varbinary(2000)',
      'index sluice_results.sluice_results_pipeline_finished_at_idx(pipeline,finished_at) is not in schema.prisma',
      'table sluice_extra (model Extra) is missing from the database',
    ]);
  });

  it('the check refuses schema constructs it cannot compare instead of ignoring them', () => {
    assert.throws(() => expectedTables(`${schema}\nenum Kind {\n  A\n}\n`), /not supported/);
    assert.throws(
      () => expectedTables(schema.replace('output     Json?\n', 'output     Json?\n  other      Result?\n')),
      /not supported/,
    );
  });

  it('store task keys as exact bytes (no collation, no trailing-space padding), as the README documents', () => {
    const keyColumns = actual.columns.filter((c) => c.c === 'task_key');
    assert.equal(keyColumns.length, 6, 'results, milestones, attempts, dispatches, quarantine, recomputes');
    for (const c of keyColumns) {
      assert.equal(String(c.type).toLowerCase(), 'varbinary(2048)', `type of ${c.t}.task_key`);
      assert.equal(c.coll, null, `collation of ${c.t}.task_key`);
    }
  });
});
