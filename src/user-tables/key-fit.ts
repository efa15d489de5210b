// Whether the user's result key column can hold every source key as itself. A result row is found again by
// its key, so a column that merges two source keys (a collation that calls 'abc' and 'ABC' one key, a
// character set that cannot hold a character), cuts one (a shorter length, a CHAR column that drops
// trailing spaces, a smaller integer range) or is of another kind stores no row for some tasks: their
// result would be "written" and never be there. Decided from the columns' metadata alone, at start.

import type { RowDataPacket } from 'mysql2/promise';
import { MAX_KEY_BYTES } from '../core/envelope.js';
import type { Pool } from '../db/pool.js';
import type { ColumnMeta, PartKind } from './key-shape.js';

export type { ColumnMeta };

export function splitTable(table: string): [string | null, string] {
  const parts = table.split('.');
  return parts.length === 2 ? [parts[0]!, parts[1]!] : [null, parts[0]!];
}

/** A table's columns by lower-case name; empty when the table does not exist. */
export async function columnsOf(pool: Pool, table: string): Promise<Map<string, ColumnMeta>> {
  const [schema, name] = splitTable(table);
  const [cols] = await pool.query<RowDataPacket[]>(
    `SELECT c.column_name AS name, c.data_type AS type, c.column_type AS ` +
      `column_type, c.is_nullable AS nullable,
       c.numeric_scale AS scale, c.numeric_precision AS prec, ` +
      `c.character_maximum_length AS chars,
       c.character_octet_length AS octets, cs.maxlen AS maxlen, ` +
      `c.character_set_name AS charset, c.collation_name AS coll
     FROM information_schema.columns c LEFT JOIN ` +
      `information_schema.character_sets cs ON cs.character_set_name = ` +
      `c.character_set_name
     WHERE c.table_schema = COALESCE(?, DATABASE()) AND c.table_name = ?`,
    [schema, name],
  );
  const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
  return new Map(
    cols.map((c) => {
      const chars = num(c.chars);
      const octets = num(c.octets);
      const maxlen = num(c.maxlen) ?? 1;
      // TEXT columns report their length in bytes: the characters they surely hold are bytes / widest character.
      const held = chars === null ? null : octets === null ? chars : Math.min(chars, Math.floor(octets / maxlen));
      const meta: ColumnMeta = {
        name: String(c.name),
        type: String(c.type).toLowerCase(),
        columnType: String(c.column_type),
        nullable: c.nullable === 'YES',
        scale: num(c.scale),
        precision: num(c.prec),
        chars: held,
        charset: c.charset === null ? null : String(c.charset),
        collation: c.coll === null ? null : String(c.coll),
      };
      return [meta.name.toLowerCase(), meta];
    }),
  );
}

const INT_BYTES: Record<string, number> = { tinyint: 1, smallint: 2, mediumint: 3, int: 4, integer: 4, bigint: 8 };

/** The smallest and largest integer a column holds. */
export function intRange(c: ColumnMeta): [bigint, bigint] {
  const unsigned = /unsigned/i.test(c.columnType);
  const bytes = INT_BYTES[c.type];
  if (bytes === undefined) {
    const max = 10n ** BigInt(c.precision ?? 65) - 1n;
    return [unsigned ? 0n : -max, max];
  }
  const bits = BigInt(bytes * 8);
  return unsigned ? [0n, 2n ** bits - 1n] : [-(2n ** (bits - 1n)), 2n ** (bits - 1n) - 1n];
}

/** Character sets that hold every character of another. */
function holds(result: string, source: string): boolean {
  if (result === source || result === 'utf8mb4' || result === 'utf32' || result === 'utf16') return true;
  if (['utf8mb3', 'utf8', 'ucs2', 'utf16le'].includes(result))
    return ['ascii', 'latin1', 'utf8mb3', 'utf8', 'ucs2'].includes(source);
  return result === 'latin1' && source === 'ascii';
}

const isBin = (coll: string): boolean => /_bin$/.test(coll);
/** NO PAD: 'a' and 'a ' are two keys (MariaDB's *_nopad_*, MySQL 8's *_0900_*). */
const isNoPad = (coll: string): boolean => /_nopad_|_0900_/.test(coll);

/** merges: accepted with results.mergeKeys; cuts: never (a cut key can land on, and overwrite, another key's row). */
export type FitProblem = {
  class: 'merges' | 'cuts';
  why: string;
  /** Which part of a composite key (0 for a one-column key). */
  part?: number;
};

/** Bytes: a fixed BINARY(n) pads what is shorter with 0x00, so it holds another column's keys only at length n. */
function bytesFit(source: ColumnMeta, result: ColumnMeta): FitProblem | null {
  const s = source.chars ?? MAX_KEY_BYTES;
  const r = result.chars ?? MAX_KEY_BYTES;
  if (result.type === 'binary' && (source.type !== 'binary' || s !== r))
    return {
      class: 'cuts',
      why: `is BINARY(${r}), which pads shorter keys with 0x00 (the source key is ${source.columnType})`,
    };
  return r < s ? { class: 'cuts', why: `holds ${r} bytes, the source key up to ${s}` } : null;
}

/**
 * How the result key column could fail to hold a source key as itself, or null when it cannot. Columns of one
 * kind only (the caller refuses other pairs).
 */
export function keyFit(source: ColumnMeta, result: ColumnMeta, kind: PartKind): FitProblem | null {
  if (kind === 'uuid') return null;
  if (kind === 'binary') return bytesFit(source, result);
  if (kind === 'int') {
    const [smin, smax] = intRange(source);
    const [rmin, rmax] = intRange(result);
    return smin < rmin || smax > rmax
      ? { class: 'cuts', why: `holds ${rmin}..${rmax}, the source key ${smin}..${smax}` }
      : null;
  }
  const sChars = Math.min(source.chars ?? MAX_KEY_BYTES, MAX_KEY_BYTES);
  if ((result.chars ?? MAX_KEY_BYTES) < sChars)
    return { class: 'cuts', why: `holds ${result.chars} characters, the source key up to ${sChars}` };
  if (result.type === 'char' && source.type !== 'char')
    return { class: 'cuts', why: 'is CHAR, which drops the trailing spaces a source key may end with' };
  const rs = result.charset ?? 'utf8mb4';
  const ss = source.charset ?? 'utf8mb4';
  if (!holds(rs, ss))
    return { class: 'cuts', why: `is in character set ${rs}, which cannot hold every ${ss} character` };
  const rc = result.collation ?? '';
  const sc = source.collation ?? '';
  if (rc === sc) return null;
  // A binary collation tells apart every two keys the source's does, unless it pads and the source does not.
  if (isBin(rc) && (isNoPad(rc) || !isNoPad(sc))) return null;
  // The same rules in a character set that holds the source's (utf8mb3_general_ci -> utf8mb4_general_ci), or
  // their accent- and case-sensitive variant (utf8mb4_0900_ai_ci -> utf8mb4_0900_as_cs).
  const rRules = rc.slice(rs.length);
  const sRules = sc.slice(ss.length);
  if (rc.startsWith(`${rs}_`) && sc.startsWith(`${ss}_`)) {
    if (rRules === sRules) return null;
    if (rRules.endsWith('_as_cs') && sRules.replace(/_(ai|as)_ci$/, '_as_cs') === rRules) return null;
  }
  return {
    class: 'merges',
    why:
      `compares keys under ${rc || 'another collation'}, which can take ` +
      `keys that ${sc} tells apart (as 'abc' and 'ABC') for one`,
  };
}

const describe = (table: string, c: ColumnMeta): string =>
  `'${table}.${c.name}' (${c.columnType}${c.collation === null ? '' : ` ${c.collation}`})`;

/** The one line that refuses a result key, naming both columns; and the statement that fixes it. */
export function fitMessage(
  p: FitProblem,
  src: { table: string; col: ColumnMeta },
  res: { table: string; col: ColumnMeta },
): { message: string; hint: string } {
  const what = p.class === 'merges' ? 'can merge keys' : 'can cut keys';
  return {
    message:
      `${describe(res.table, res.col)} ${what} of ${describe(src.table, src.col)}: it ${p.why}, ` +
      `so some results would be stored under another key or not at all`,
    hint:
      `${modifyStatement(res.table, res.col.name, src.col)}` +
      `${p.class === 'merges' ? ' (or set results.mergeKeys: true to accept merged keys)' : ''}`,
  };
}

/** The result key column made like the source key column. */
export function modifyStatement(table: string, column: string, like: ColumnMeta): string {
  const text = like.charset === null ? '' : ` CHARACTER SET ${like.charset} COLLATE ${like.collation}`;
  return `ALTER TABLE ${table} MODIFY ${column} ${like.columnType}${text} NOT NULL`;
}

const NAME = /^[A-Za-z0-9_]+$/;

/** A text value in the result key column's character set and collation, so its unique index is used. */
export function asResultKey(r: { charset: string | null; collation: string | null }, value: string): string {
  const cs = r.charset !== null && NAME.test(r.charset) ? r.charset : 'utf8mb4';
  const coll = r.collation !== null && NAME.test(r.collation) ? ` COLLATE ${r.collation}` : '';
  return `CONVERT(${value} USING ${cs})${coll}`;
}

/**
 * Whether a source key is matched with its result row byte for byte; false only when the user accepted
 * merged text keys (results.mergeKeys), which are then matched under the result key's collation.
 */
export const exactKeys = (r: { merging: FitProblem | null; mergeKeys: boolean; keyKind: string }): boolean =>
  r.merging === null || r.merging.class !== 'merges' || !r.mergeKeys || r.keyKind !== 'string';
