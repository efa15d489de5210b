// Reads what sluice needs to know about a pipeline's source table before building any query: the key
// column's kind (integer or text), that it is unique and NOT NULL (so keyset pagination is exact and every
// cursor is a real key), and that the configured columns exist. Every problem is one SourceError naming the
// config key and the statement or setting that fixes it.

import type { RowDataPacket } from 'mysql2/promise';
import type { SourceConfig } from '../config/config.js';
import { SourceError } from '../core/errors.js';
import type { Pool } from '../db/pool.js';
import { columnKind, type KeyKind, type SourceInfo } from './table-info.js';
import { quoteIdentifier } from '../core/identifiers.js';
import { columnsOf, splitTable, type ColumnMeta } from './key-fit.js';

export { splitTable };

function keyKindOf(pipeline: string, source: SourceConfig, col: ColumnMeta): KeyKind {
  const kind = columnKind(col.type, col.scale);
  if (kind !== null) return kind;
  throw new SourceError(
    'SOURCE_KEY_TYPE',
    `pipelines.${pipeline}.source.key: '${source.table}.${source.key}' is ${col.columnType}; ` +
      `sluice needs an integer (or DECIMAL(n,0)) or character column`,
    {
      hint:
        'point source.key at an integer or VARCHAR column (binary keys have no ' +
        'text form sluice could compare exactly)',
    },
  );
}

/** Inspects the source table; throws a SourceError for anything that would make paging or "done" inexact. */
export async function checkSource(pool: Pool, source: SourceConfig, pipeline: string): Promise<SourceInfo> {
  const [schema, table] = splitTable(source.table);
  const at = `pipelines.${pipeline}.source`;
  const byName = await columnsOf(pool, source.table);
  if (byName.size === 0) {
    throw new SourceError('SOURCE_MISSING', `${at}.table: source table '${source.table}' does not exist`, {
      hint: 'create it, or fix source.table in the config',
    });
  }
  const missing = [source.key, ...source.columns].filter((c) => !byName.has(c.toLowerCase()));
  if (missing.length > 0) {
    throw new SourceError(
      'SOURCE_COLUMNS',
      `${at}: source table '${source.table}' has no column(s) ${missing.join(', ')}`,
      {
        hint: 'check source.key and source.columns in the config',
      },
    );
  }
  const col = byName.get(source.key.toLowerCase())!;
  const keyKind = keyKindOf(pipeline, source, col);
  if (col.nullable) {
    // A NULL key has no text: it can be neither published nor finished, and as a page cursor it skipped rows.
    throw new SourceError(
      'SOURCE_KEY_NULLABLE',
      `${at}.key: '${source.table}.${source.key}' may be NULL; sluice needs a NOT NULL key`,
      {
        hint:
          `give NULL rows a key or delete them, then: ` +
          `ALTER TABLE ${source.table} MODIFY ${source.key} ${col.columnType} ` +
          `NOT NULL`,
      },
    );
  }
  const [idx] = await pool.query<RowDataPacket[]>(
    `SELECT index_name AS name FROM information_schema.statistics
     WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? AND non_unique = 0
     GROUP BY index_name HAVING COUNT(*) = 1 AND MAX(column_name = ?) = 1`,
    [schema, table, source.key],
  );
  if (idx.length === 0) {
    throw new SourceError(
      'SOURCE_KEY_NOT_UNIQUE',
      `${at}.key: '${source.table}.${source.key}' is not the primary key or a unique index of its own`,
      {
        hint: `sluice pages by this key: ALTER TABLE ${source.table} ADD UNIQUE (${source.key})`,
      },
    );
  }
  if (source.where !== undefined) await checkWhere(pool, source, pipeline);
  return { ...source, keyKind, keyColumn: col };
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
