// A view as a source. Keyset paging and the anti-join are exact and fast on a view only when MariaDB merges it
// into the query (so the WHERE and ORDER BY on its key reach the table's index) and the key is unique in the one
// table under it. Both are read from information_schema: the view's algorithm (MERGE, or UNDEFINED on an
// updatable view, which MariaDB then merges), its definition (one table, the key columns selected under their
// own names or renamed), and that table's unique indexes. Anything else is refused with one line and
// `source.where` on the table as the way that works.

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
const ONE_TABLE = new RegExp(`^select (.*?) from ${ident}\\.${ident}(?: ${ident})?(?: where .*)?$`, 's');
const escapeRe = (t: string): string => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The one table under the view, and for each key column of the view the table's column it shows (a view may
 * rename it: `SELECT doc_id AS id`); null for a key column that is not a plain column of the table.
 */
function baseOf(v: ViewInfo, keys: readonly string[]): { table: string; columns: Array<string | null> } | null {
  const m = ONE_TABLE.exec(v.definition);
  if (m === null) return null;
  const [, list, db, table, alias] = m as unknown as [string, string, string, string, string | undefined];
  const prefix = alias === undefined ? `\`${db}\`.\`${table}\`.` : `\`${alias}\`.`;
  const columns = keys.map((k) => {
    const as = `\`${k.replace(/`/g, '``')}\``;
    const hit = new RegExp(`(?:^|,)${escapeRe(prefix)}${ident} AS ${escapeRe(as)}(?:,|$)`, 'i').exec(list);
    return hit === null ? null : unquote(hit[1]!);
  });
  return { table: `${unquote(db)}.${unquote(table)}`, columns };
}

const HINT = "use the table under it as source.table, with the view's condition as source.where";

/** A view's refusal: one line, and the way that works (never an ALTER TABLE, which a view cannot take). */
export function viewError(source: SourceConfig, at: string, why: string): SourceError {
  return new SourceError('SOURCE_VIEW', `${at}.table: '${source.table}' is a view ${why}`, { hint: HINT });
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
    throw viewError(source, at, why);
  };
  if (v.definition.trim() === '')
    refuse('whose definition this user cannot read (SHOW VIEW is needed to check that its key is unique)');
  const merged = v.algorithm === 'MERGE' || (v.algorithm === 'UNDEFINED' && v.updatable);
  if (!merged) {
    const why =
      v.algorithm === 'UNDEFINED' ? 'algorithm UNDEFINED on a view that is not updatable' : 'algorithm TEMPTABLE';
    refuse(
      `MariaDB may not merge (${why}): paging it would read it whole per page; CREATE ALGORITHM=MERGE VIEW if it can`,
    );
  }
  const base = baseOf(v, keys);
  if (base === null) refuse('of more than one table (or not a plain selection of one)');
  const plain = base!.columns.filter((c): c is string => c !== null);
  if (plain.length < keys.length) {
    const not = keys.filter((_, i) => base!.columns[i] === null);
    refuse(`whose key column(s) ${not.join(', ')} are not plain columns of '${base!.table}'`);
  }
  try {
    await unique(pool, base!.table, plain, at);
  } catch (err) {
    if (!(err instanceof SourceError)) throw err;
    refuse(`over '${base!.table}', where its key is not unique: ${err.message.replace(/^[^:]*: /, '')}`);
  }
}
