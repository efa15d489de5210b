// Reads what sluice needs to know about a pipeline's source table (or merged view, source-view.ts) before building
// any query: the key's parts and their kinds (integer, text, bytes, UUID), that the key is unique and NOT NULL (so
// keyset pagination is exact and every cursor is a real key), and that the configured columns exist. Every
// problem is one SourceError naming the config key and the statement or setting that fixes it.

import type { RowDataPacket } from 'mysql2/promise';
import type { SourceConfig } from '../config/config.js';
import { SourceError } from '../core/errors.js';
import type { Pool } from '../db/pool.js';
import { columnKind, keyKindOf, type SourceInfo } from './table-info.js';
import { keyColumns, type KeyPart } from './key-shape.js';
import { checkView, viewError, viewOf } from './source-view.js';
import { quoteIdentifier } from '../core/identifiers.js';
import { columnsOf, splitTable, type ColumnMeta } from './key-fit.js';

export { splitTable };

function partOf(pipeline: string, source: SourceConfig, col: ColumnMeta): KeyPart {
  const kind = columnKind(col.type, col.scale);
  if (kind !== null) return { column: col.name, kind, meta: col };
  throw new SourceError(
    'SOURCE_KEY_TYPE',
    `pipelines.${pipeline}.source.key: '${source.table}.${col.name}' is ${col.columnType}; sluice needs an ` +
      `integer (or DECIMAL(n,0)), character, BINARY/VARBINARY or UUID column`,
    { hint: 'point source.key at such a column (or at the columns of a composite key)' },
  );
}

/** Inspects the source table; throws a SourceError for anything that would make paging or "done" inexact. */
export async function checkSource(pool: Pool, source: SourceConfig, pipeline: string): Promise<SourceInfo> {
  const at = `pipelines.${pipeline}.source`;
  const byName = await columnsOf(pool, source.table);
  if (byName.size === 0) {
    throw new SourceError('SOURCE_MISSING', `${at}.table: source table '${source.table}' does not exist`, {
      hint: 'create it, or fix source.table in the config',
    });
  }
  const keys = keyColumns(source.key);
  const missing = [...keys, ...source.columns].filter((c) => !byName.has(c.toLowerCase()));
  if (missing.length > 0) {
    throw new SourceError(
      'SOURCE_COLUMNS',
      `${at}: source table '${source.table}' has no column(s) ${missing.join(', ')}`,
      {
        hint: 'check source.key and source.columns in the config',
      },
    );
  }
  const parts = keys.map((k) => partOf(pipeline, source, byName.get(k.toLowerCase())!));
  const view = await viewOf(pool, source.table);
  const nullable = parts.find((p) => p.meta.nullable);
  if (nullable !== undefined && view !== null)
    throw viewError(source, at, `whose key column ${nullable.column} may be NULL (sluice needs a NOT NULL key)`);
  if (nullable !== undefined) {
    // A NULL key has no text: it can be neither published nor finished, and as a page cursor it skipped rows.
    throw new SourceError(
      'SOURCE_KEY_NULLABLE',
      `${at}.key: '${source.table}.${nullable.column}' may be NULL; sluice needs a NOT NULL key`,
      {
        hint:
          `give NULL rows a key or delete them, then: ` +
          `ALTER TABLE ${source.table} MODIFY ${nullable.column} ${nullable.meta.columnType} NOT NULL`,
      },
    );
  }
  if (view !== null) await checkView(pool, view, source, keys, at, checkUnique);
  else await checkUnique(pool, source.table, keys, at);
  if (source.where !== undefined) await checkWhere(pool, source, pipeline);
  return { ...source, keyKind: keyKindOf(parts), parts };
}

/** The unique indexes of a table over whole columns, each as its columns in order (lower case). */
export async function uniqueIndexes(pool: Pool, table: string): Promise<string[][]> {
  const [schema, name] = splitTable(table);
  const [idx] = await pool.query<RowDataPacket[]>(
    `SELECT index_name AS name, column_name AS col, sub_part AS part FROM information_schema.statistics
     WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? AND non_unique = 0
     ORDER BY index_name, seq_in_index`,
    [schema, name],
  );
  const by = new Map<string, string[]>();
  const prefixed = new Set<string>();
  for (const r of idx) {
    const list = by.get(String(r.name)) ?? [];
    list.push(String(r.col).toLowerCase());
    by.set(String(r.name), list);
    // An index on a prefix of a column neither orders the key nor makes it unique as a whole.
    if (r.part !== null && r.part !== undefined) prefixed.add(String(r.name));
  }
  return [...by.entries()].filter(([name]) => !prefixed.has(name)).map(([, cols]) => cols);
}

const sameList = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((c, i) => c.toLowerCase() === b[i]!.toLowerCase());

/** The key's columns are a unique index, in its order (keyset paging reads that index). */
async function checkUnique(pool: Pool, table: string, keys: string[], at: string): Promise<void> {
  const indexes = await uniqueIndexes(pool, table);
  if (indexes.some((cols) => sameList(cols, keys))) return;
  const reordered = indexes.find((cols) => cols.length === keys.length && sameList([...cols].sort(), [...keys].sort()));
  if (reordered !== undefined) {
    throw new SourceError(
      'SOURCE_KEY_NOT_UNIQUE',
      `${at}.key: the unique index over ${keys.join(', ')} of '${table}' has its columns in another order`,
      { hint: `sluice pages by the index's order: source.key: [${reordered.map((c) => `'${c}'`).join(', ')}]` },
    );
  }
  const wider = indexes.find((cols) => keys.every((k) => cols.includes(k.toLowerCase())) && cols.length > 1);
  const what = keys.length === 1 ? `'${table}.${keys[0]}' is` : `(${keys.join(', ')}) of '${table}' are`;
  throw new SourceError(
    'SOURCE_KEY_NOT_UNIQUE',
    `${at}.key: ${what} not the primary key or a unique index of ${keys.length === 1 ? 'its own' : 'their own'}`,
    {
      hint:
        wider !== undefined
          ? `its key is (${wider.join(', ')}): source.key: [${wider.map((c) => `'${c}'`).join(', ')}]`
          : `sluice pages by this key: ALTER TABLE ${table} ADD UNIQUE (${keys.join(', ')})`,
    },
  );
}

/** Lets the database plan the filter once: a syntax error or an unknown column is one line at start. */
async function checkWhere(pool: Pool, source: SourceConfig, pipeline: string): Promise<void> {
  try {
    await pool.query(
      `EXPLAIN SELECT 1 FROM (SELECT * FROM ${quoteIdentifier(source.table)} WHERE (${source.where})) s LIMIT 1`,
    );
  } catch (err) {
    throw new SourceError(
      'SOURCE_WHERE',
      `pipelines.${pipeline}.source.where: the database ` +
        `refuses ${JSON.stringify(source.where)}: ${(err as Error).message}`,
      {
        hint: "write a condition on the source table's columns, as after WHERE",
        cause: err,
      },
    );
  }
}

/**
 * A query on the source failed because the table or a column went away while sluice ran (dropped, renamed):
 * a SourceError naming the key; null for any other error.
 */
export function sourceQueryError(err: unknown, source: SourceConfig, pipeline: string): SourceError | null {
  const codes = [(err as { code?: string } | null)?.code, (err as { cause?: { code?: string } } | null)?.cause?.code];
  const code = codes.find((c) => c === 'ER_NO_SUCH_TABLE' || c === 'ER_BAD_FIELD_ERROR');
  if (code === undefined) return null;
  const what =
    code === 'ER_NO_SUCH_TABLE'
      ? `source table '${source.table}' no longer exists`
      : `a column of source table '${source.table}' no longer exists`;
  return new SourceError('SOURCE_GONE', `pipelines.${pipeline}.source: ${what} (${(err as Error).message})`, {
    hint: 'restore the table or fix the pipeline in the config, then rerun (nothing done so far is lost)',
    cause: err,
  });
}

/** The server's estimate of a table's rows (information_schema): enough to tell 10k from 10M, instantly. */
export async function tableRowsGuess(pool: Pool, table: string): Promise<number> {
  const [schema, name] = splitTable(table);
  const [[r]] = await pool.query<RowDataPacket[]>(
    'SELECT TABLE_ROWS AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA ' +
      '= COALESCE(?, DATABASE()) AND TABLE_NAME = ?',
    [schema, name],
  );
  return Number(r?.n ?? 0);
}
