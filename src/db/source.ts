// Reads what the producer needs to know about a pipeline's source table before building any query:
// the key column's kind (integer or text) and that it is unique, so keyset pagination is exact.

import type { RowDataPacket } from 'mysql2/promise';
import type { SourceConfig } from '../core/config.js';
import { DatabaseError } from '../core/errors.js';
import type { Pool } from './pool.js';

export type KeyKind = 'int' | 'string';

export interface SourceInfo extends SourceConfig {
  keyKind: KeyKind;
}

const INT_TYPES = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint']);
const STRING_TYPES = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext']);

function splitTable(table: string): [string | null, string] {
  const parts = table.split('.');
  return parts.length === 2 ? [parts[0]!, parts[1]!] : [null, parts[0]!];
}

export async function inspectSource(pool: Pool, source: SourceConfig): Promise<SourceInfo> {
  const [schema, table] = splitTable(source.table);
  const [cols] = await pool.query<RowDataPacket[]>(
    `SELECT column_name AS name, data_type AS type FROM information_schema.columns
     WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?`,
    [schema, table],
  );
  if (cols.length === 0) {
    throw new DatabaseError('SOURCE_MISSING', `source table '${source.table}' does not exist`, { hint: 'check source.table in sluice.config.ts' });
  }
  const byName = new Map(cols.map((c) => [String(c.name).toLowerCase(), String(c.type).toLowerCase()]));
  const missing = [source.key, ...source.columns].filter((c) => !byName.has(c.toLowerCase()));
  if (missing.length > 0) {
    throw new DatabaseError('SOURCE_COLUMNS', `source table '${source.table}' has no column(s) ${missing.join(', ')}`, {
      hint: 'check source.key and source.columns in sluice.config.ts',
    });
  }
  const type = byName.get(source.key.toLowerCase())!;
  const keyKind: KeyKind | null = INT_TYPES.has(type) ? 'int' : STRING_TYPES.has(type) ? 'string' : null;
  if (keyKind === null) {
    throw new DatabaseError('SOURCE_KEY_TYPE', `source key '${source.table}.${source.key}' is ${type}; sluice needs an integer or character column`, {
      hint: 'point source.key at an integer or VARCHAR column',
    });
  }
  const [idx] = await pool.query<RowDataPacket[]>(
    `SELECT index_name AS name FROM information_schema.statistics
     WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? AND non_unique = 0
     GROUP BY index_name HAVING COUNT(*) = 1 AND MAX(column_name = ?) = 1`,
    [schema, table, source.key],
  );
  if (idx.length === 0) {
    throw new DatabaseError('SOURCE_KEY_NOT_UNIQUE', `source key '${source.table}.${source.key}' is not the primary key or a unique index of its own`, {
      hint: `sluice pages by this key: ALTER TABLE ${source.table} ADD UNIQUE (${source.key})`,
    });
  }
  return { ...source, keyKind };
}
