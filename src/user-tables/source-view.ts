// A view as a source. Keyset paging and the anti-join are exact and fast on a view only when MariaDB merges it
// into the query (so the WHERE and ORDER BY on its key reach the table's index) and the key is unique in the one
// table under it. Both are read from information_schema: the view's algorithm (MERGE, or UNDEFINED on an
// updatable view, which MariaDB then merges), its definition (one table, the key columns selected under their
// own names), and that table's unique indexes. Anything else is refused with one line and `source.where` on the
// table as the way that works.

import type { RowDataPacket } from 'mysql2/promise';
import type { SourceConfig } from '../config/config.js';
import { SourceError } from '../core/errors.js';
import type { Pool } from '../db/pool.js';
import { splitTable } from './key-fit.js';

export interface ViewInfo {
  schema: string;
  name: string;
  algorithm: string;
  updatable: boolean;
  definition: string;
}

/** The view's description, or null when `table` is a table. */
export async function viewOf(pool: Pool, table: string): Promise<ViewInfo | null> {
  const [schema, name] = splitTable(table);
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT table_schema AS s, algorithm AS a, is_updatable AS u, view_definition AS d FROM information_schema.views
     WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?`,
    [schema, name],
  );
  const r = rows[0];
  if (r === undefined) return null;
  return { schema: String(r.s), name, algorithm: String(r.a), updatable: r.u === 'YES', definition: String(r.d) };
}

const ident = '`((?:[^`]|``)+)`';
const unquote = (q: string): string => q.replace(/``/g, '`');
const ONE_TABLE = new RegExp(`^select (.*?) from ${ident}\\.${ident}(?: where .*)?$`, 's');

/** The one table under the view and whether each key column is that table's column of the same name. */
function baseOf(v: ViewInfo, keys: readonly string[]): { table: string; renamed: string[] } | null {
  const m = ONE_TABLE.exec(v.definition);
  if (m === null) return null;
  const [, list, db, table] = m as unknown as [string, string, string, string];
  const prefix = `\`${db}\`.\`${table}\`.`;
  const renamed = keys.filter((k) => {
    const q = k.replace(/`/g, '``');
    return !list.toLowerCase().includes(`${prefix}\`${q}\` as \`${q}\``.toLowerCase());
  });
  return { table: `${unquote(db)}.${unquote(table)}`, renamed };
}

/** Accepts the view or throws the one line that says why not. */
export async function checkView(
  pool: Pool,
  v: ViewInfo,
  source: SourceConfig,
  keys: readonly string[],
  at: string,
  unique: (pool: Pool, table: string, keys: string[], at: string) => Promise<void>,
): Promise<void> {
  const refuse = (why: string): never => {
    throw new SourceError('SOURCE_VIEW', `${at}.table: '${source.table}' is a view ${why}`, {
      hint: "use the table under it as source.table, with the view's condition as source.where",
    });
  };
  const merged = v.algorithm === 'MERGE' || (v.algorithm === 'UNDEFINED' && v.updatable);
  if (!merged) refuse(`MariaDB does not merge (algorithm ${v.algorithm}): paging it would read it whole per page`);
  const base = baseOf(v, keys);
  if (base === null) refuse('of more than one table (or not a plain selection of one)');
  if (base!.renamed.length > 0)
    refuse(`whose key column(s) ${base!.renamed.join(', ')} are not the table's columns of the same name`);
  try {
    await unique(pool, base!.table, [...keys], at);
  } catch (err) {
    if (!(err instanceof SourceError)) throw err;
    refuse(`over '${base!.table}', where its key is not unique: ${err.message.replace(/^[^:]*: /, '')}`);
  }
}
