// A pipeline's result table of the user's own (`results` in the config): where "done" is defined and where
// workers write each task's result. Checked at start, before anything is written: the table and its columns
// exist, its key is NOT NULL with a unique index of its own (an upsert needs it), and the key's type matches
// the source key's (integer with integer, text with text). Each problem is one ResultsError naming the key.

import type { RowDataPacket } from 'mysql2/promise';
import type { ResultsConfig } from '../core/config.js';
import { SourceError } from '../core/errors.js';
import { quoteIdentifier } from '../core/identifiers.js';
import type { Pool } from './pool.js';
import { columnKind, splitTable, type KeyKind } from './source.js';

export interface ResultsInfo extends ResultsConfig {
  keyKind: KeyKind;
  /** Character set and collation of a text key column (null for integers). */
  charset: string | null;
  collation: string | null;
}

interface Column {
  type: string;
  columnType: string;
  nullable: boolean;
  scale: number | null;
  charset: string | null;
  collation: string | null;
}

async function columnsOf(pool: Pool, table: string): Promise<Map<string, Column>> {
  const [schema, name] = splitTable(table);
  const [cols] = await pool.query<RowDataPacket[]>(
    `SELECT column_name AS name, data_type AS type, column_type AS column_type, is_nullable AS nullable, numeric_scale AS scale,
       character_set_name AS charset, collation_name AS coll
     FROM information_schema.columns WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?`,
    [schema, name],
  );
  return new Map(
    cols.map((c) => [
      String(c.name).toLowerCase(),
      {
        type: String(c.type).toLowerCase(),
        columnType: String(c.column_type),
        nullable: c.nullable === 'YES',
        scale: c.scale === null ? null : Number(c.scale),
        charset: c.charset === null ? null : String(c.charset),
        collation: c.coll === null ? null : String(c.coll),
      },
    ]),
  );
}

async function hasOwnUniqueIndex(pool: Pool, table: string, column: string): Promise<boolean> {
  const [schema, name] = splitTable(table);
  const [idx] = await pool.query<RowDataPacket[]>(
    `SELECT index_name FROM information_schema.statistics
     WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? AND non_unique = 0
     GROUP BY index_name HAVING COUNT(*) = 1 AND MAX(column_name = ?) = 1`,
    [schema, name, column],
  );
  return idx.length > 0;
}

/** Inspects the result table against the source key's kind; throws a SourceError (exit 2) for each problem. */
export async function inspectResults(pool: Pool, results: ResultsConfig, sourceKind: KeyKind, pipeline: string): Promise<ResultsInfo> {
  const at = `pipelines.${pipeline}.results`;
  const cols = await columnsOf(pool, results.table);
  if (cols.size === 0) {
    throw new SourceError('RESULTS_MISSING', `${at}.table: result table '${results.table}' does not exist`, { hint: 'create it, or fix results.table in the config' });
  }
  const missing = [results.key, ...results.columns].filter((c) => !cols.has(c.toLowerCase()));
  if (missing.length > 0) {
    throw new SourceError('RESULTS_COLUMNS', `${at}: result table '${results.table}' has no column(s) ${missing.join(', ')}`, { hint: 'check results.key and results.columns' });
  }
  const key = cols.get(results.key.toLowerCase())!;
  const keyKind = columnKind(key.type, key.scale);
  if (keyKind === null || keyKind !== sourceKind) {
    throw new SourceError(
      'RESULTS_KEY_TYPE',
      `${at}.key: '${results.table}.${results.key}' is ${key.columnType}, the source key is ${sourceKind === 'int' ? 'an integer' : 'text'}; they must be both integers or both text`,
      { hint: 'point results.key at a column of the same kind as source.key' },
    );
  }
  if (key.nullable) {
    throw new SourceError('RESULTS_KEY_NULLABLE', `${at}.key: '${results.table}.${results.key}' may be NULL; sluice needs a NOT NULL key`, {
      hint: `ALTER TABLE ${results.table} MODIFY ${results.key} ${key.columnType} NOT NULL`,
    });
  }
  if (!(await hasOwnUniqueIndex(pool, results.table, results.key))) {
    const [[dup]] = await pool.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n FROM (SELECT 1 FROM ${quoteIdentifier(results.table)} GROUP BY ${quoteIdentifier(results.key)} HAVING COUNT(*) > 1) d`,
    );
    const n = Number(dup?.n ?? 0);
    const dups = n === 0 ? 'it holds no duplicate keys' : `it holds ${n} duplicated key(s): keep one row each first`;
    throw new SourceError('RESULTS_KEY_NOT_UNIQUE', `${at}.key: '${results.table}.${results.key}' has no unique index of its own (an upsert needs one); ${dups}`, {
      hint: `ALTER TABLE ${results.table} ADD UNIQUE (${results.key})`,
    });
  }
  return { ...results, keyKind, charset: key.charset, collation: key.collation };
}

/**
 * Whether the result key's collation would merge keys the source holds as different rows ('a', 'a ' and 'A'
 * in a case-insensitive or PAD SPACE collation): the number of such source keys, for `doctor` to warn.
 */
export async function mergedKeys(pool: Pool, info: ResultsInfo, sourceTable: string, sourceKey: string): Promise<number> {
  if (info.keyKind !== 'string' || info.collation === null || info.charset === null) return 0;
  const k = `CONVERT(${quoteIdentifier(sourceKey)} USING ${info.charset}) COLLATE ${info.collation}`;
  const [[row]] = await pool.query<RowDataPacket[]>(
    `SELECT COALESCE(SUM(n), 0) AS n FROM (SELECT COUNT(*) AS n FROM ${quoteIdentifier(sourceTable)} GROUP BY ${k} HAVING COUNT(*) > 1) d`,
  );
  return Number(row?.n ?? 0);
}
