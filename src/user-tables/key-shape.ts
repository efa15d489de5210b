// A source key as sluice handles it: one column, or several that together are the primary key or a unique index
// (a composite key), each part an integer, text, bytes (BINARY/VARBINARY) or MariaDB's UUID. Every key has one
// canonical text, the only form the ledger, the envelope and Kafka's message key carry:
//   - an integer: its decimal form; text: its characters (as UTF-8);
//   - bytes and UUID: the lowercase hex of the bytes (a UUID in its RFC byte order, as HEX() gives it), every
//     byte kept: BINARY(n) padding, 0x00 and 0xFF alike;
//   - a composite key: its parts' texts in the configured order, joined by ',', where a text part writes '\' as
//     '\\' and ',' as '\,'. Integers and hex hold neither, so one text is one tuple and one tuple one text.
// The SQL here and the JavaScript here make the same text; nothing else derives it (core/envelope.ts).

import { quoteIdentifier } from '../core/identifiers.js';

/** A column as information_schema describes it (key-fit.ts columnsOf reads it). */
export interface ColumnMeta {
  name: string;
  type: string;
  columnType: string;
  nullable: boolean;
  scale: number | null;
  precision: number | null;
  /** Characters a text column holds (null for numbers). */
  chars: number | null;
  charset: string | null;
  collation: string | null;
}

export type PartKind = 'int' | 'string' | 'binary' | 'uuid';

export interface KeyPart {
  column: string;
  kind: PartKind;
  meta: ColumnMeta;
}

export interface KeyShape {
  readonly parts: readonly KeyPart[];
}

/** The canonical decimal form of an integer key part. */
export const INTEGER_KEY = /^(0|-?[1-9]\d{0,64})$/;
// Zero bytes are a VARBINARY value too (a composite key's part may be empty; a one-column empty key is skipped).
const HEX = /^(?:[0-9a-f]{2})*$/;
const UUID_HEX = /^[0-9a-f]{32}$/;
const UUID_TEXT = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

const col = (p: KeyPart, alias: string): string => `${alias}.${quoteIdentifier(p.column)}`;

/** Whether the part is shown as a UUID (8-4-4-4-12): MariaDB's UUID and BINARY(16). */
export const uuidShaped = (p: KeyPart): boolean =>
  p.kind === 'uuid' || (p.kind === 'binary' && p.meta.type === 'binary' && p.meta.chars === 16);

/** The configured key as a list of columns. */
export const keyColumns = (key: string | readonly string[]): string[] => (typeof key === 'string' ? [key] : [...key]);

/** SQL for one part's canonical text. */
function partTextSql(p: KeyPart, alias: string): string {
  const c = col(p, alias);
  if (p.kind === 'int') return `CAST(${c} + 0 AS CHAR)`;
  if (p.kind === 'string') return `CONVERT(${c} USING utf8mb4)`;
  return `CONVERT(LOWER(HEX(${c})) USING utf8mb4)`;
}

/**
 * SQL for the canonical text of the key of the row with alias `alias`. A composite key is joined as bytes (UTF-8
 * never has 0x5C or 0x2C inside a multi-byte character), so no collation of a part can meet another's.
 */
export function keyTextSql(shape: KeyShape, alias = 's'): string {
  const { parts } = shape;
  if (parts.length === 1) return partTextSql(parts[0]!, alias);
  const each = parts.map((p) => {
    const bytes = `CAST(${partTextSql(p, alias)} AS BINARY)`;
    return p.kind === 'string' ? `REPLACE(REPLACE(${bytes}, X'5C', X'5C5C'), X'2C', X'5C2C')` : bytes;
  });
  return `CONVERT(CONCAT_WS(X'2C', ${each.join(', ')}) USING utf8mb4)`;
}

/** The key columns in index order, for ORDER BY. */
export const keyOrderSql = (shape: KeyShape, alias = 's'): string => shape.parts.map((p) => col(p, alias)).join(', ');

/** One composite text's parts, or null when it is not a well-formed tuple of that many parts. */
function splitParts(text: string, n: number): string[] | null {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\\') {
      const next = text[i + 1];
      if (next !== '\\' && next !== ',') return null;
      cur += next;
      i++;
    } else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.length === n ? out : null;
}

/** Whether `text` is the canonical text of a value of this part. */
function partFits(p: KeyPart, text: string): boolean {
  if (p.kind === 'int') return INTEGER_KEY.test(text);
  if (p.kind === 'uuid') return UUID_HEX.test(text);
  if (p.kind === 'binary') {
    if (!HEX.test(text)) return false;
    const bytes = text.length / 2;
    const max = p.meta.chars ?? Infinity;
    return p.meta.type === 'binary' ? bytes === max : bytes <= max;
  }
  return true;
}

/** The parts' canonical texts of a key text, or null when no row of this shape can have that key. */
export function decodeKey(shape: KeyShape, text: string): string[] | null {
  const { parts } = shape;
  const texts = parts.length === 1 ? [text] : splitParts(text, parts.length);
  if (texts === null) return null;
  return texts.every((t, i) => partFits(parts[i]!, t)) ? texts : null;
}

/** The key text of a tuple of part texts (each already canonical). */
export function encodeKey(shape: KeyShape, texts: readonly string[]): string {
  if (shape.parts.length === 1) return texts[0]!;
  return texts.map((t, i) => (shape.parts[i]!.kind === 'string' ? t.replace(/[\\,]/g, (c) => `\\${c}`) : t)).join(',');
}

/** The value to compare a part's column with: an integer inline (exact, by the index), bytes as a Buffer. */
function partSql(p: KeyPart, text: string, params: unknown[]): string {
  if (p.kind === 'int') return text;
  params.push(p.kind === 'binary' ? Buffer.from(text, 'hex') : text);
  return '?';
}

/**
 * The keyset condition "the row's key comes after `after`" on the key columns, in a form MariaDB reads as index
 * ranges (a row constructor `(a, b) > (?, ?)` makes it scan the index from its start): a > 1 OR (a = 1 AND b > 2).
 * The same for one column: a > 1.
 */
export function keyAfterSql(shape: KeyShape, after: string, params: unknown[], alias = 's'): string {
  const texts = decodeKey(shape, after);
  // The cursor is a key this query returned, in keyTextSql's form; anything else is a bug here.
  if (texts === null) throw new TypeError(`key cursor of this source expected, got ${JSON.stringify(after)}`);
  const at = (i: number): string => {
    const p = shape.parts[i]!;
    const gt = `${col(p, alias)} > ${partSql(p, texts[i]!, params)}`;
    if (i === shape.parts.length - 1) return gt;
    return `(${gt} OR (${col(p, alias)} = ${partSql(p, texts[i]!, params)} AND ${at(i + 1)}))`;
  };
  return at(0);
}

/**
 * "The row's key is one of `keys`" on the key columns, so the index is read only at those keys; 'FALSE' when none
 * can be a key of this shape. A text part under a case-insensitive collation can match a row of another key:
 * callers compare the row's canonical text with the keys.
 */
export function keyInSql(shape: KeyShape, keys: readonly string[], params: unknown[], alias = 's'): string {
  const tuples = keys.map((k) => decodeKey(shape, k)).filter((t): t is string[] => t !== null);
  if (tuples.length === 0) return 'FALSE';
  const { parts } = shape;
  if (parts.length === 1) {
    const p = parts[0]!;
    if (p.kind === 'int') return `${col(p, alias)} IN (${tuples.map((t) => t[0]).join(', ')})`;
    params.push(tuples.map((t) => (p.kind === 'binary' ? Buffer.from(t[0]!, 'hex') : t[0]!)));
    return `${col(p, alias)} IN (?)`;
  }
  const rows = tuples.map((t) => `(${t.map((v, i) => partSql(parts[i]!, v, params)).join(', ')})`);
  return `(${keyOrderSql(shape, alias)}) IN (${rows.join(', ')})`;
}

/** The values a key's columns get in a row written for it (a result row): bytes as Buffers, the rest as text. */
export function keyValues(shape: KeyShape, text: string): unknown[] | null {
  const texts = decodeKey(shape, text);
  if (texts === null) return null;
  return texts.map((t, i) => (shape.parts[i]!.kind === 'binary' ? Buffer.from(t, 'hex') : t));
}

/** The composite key's parts as the envelope carries them (integers as numbers when exact); undefined for one. */
export function envelopeParts(shape: KeyShape, text: string): Array<string | number> | undefined {
  if (shape.parts.length === 1) return undefined;
  const texts = decodeKey(shape, text);
  // Every key reaching here came from keyTextSql of this very shape.
  if (texts === null) throw new TypeError(`key of this source expected, got ${JSON.stringify(text)}`);
  return texts.map((t, i) => {
    if (shape.parts[i]!.kind !== 'int') return t;
    const n = Number(t);
    return Number.isSafeInteger(n) ? n : t;
  });
}

const dashed = (h: string): string =>
  `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;

/** A key as people read it: a UUID-shaped key as 8-4-4-4-12, anything else as its canonical text. */
export function displayKey(shape: KeyShape, text: string): string {
  const { parts } = shape;
  if (parts.length === 1 && uuidShaped(parts[0]!) && UUID_HEX.test(text)) return dashed(text);
  return text;
}

/** One typed part in its canonical form: a UUID with or without dashes, hex in either case. */
function typedPart(p: KeyPart, typed: string): string {
  if (p.kind === 'binary' || p.kind === 'uuid') {
    const t = UUID_TEXT.test(typed) ? typed.replace(/-/g, '') : typed;
    return /^[0-9a-fA-F]*$/.test(t) ? t.toLowerCase() : t;
  }
  return typed;
}

const partHelp = (p: KeyPart): string =>
  p.kind === 'int'
    ? 'an integer'
    : p.kind === 'string'
      ? 'text'
      : uuidShaped(p)
        ? 'a UUID (8-4-4-4-12, or 32 hex digits)'
        : `hex digits (${p.meta.type === 'binary' ? 'exactly' : 'at most'} ${p.meta.chars ?? '?'} bytes)`;

/** How a key of this shape is typed, for messages. */
export function keyHelp(shape: KeyShape): string {
  const { parts } = shape;
  if (parts.length === 1) return partHelp(parts[0]!);
  return (
    `${parts.length} parts (${parts.map((p) => `${p.column}: ${partHelp(p)}`).join(', ')}), ` +
    `as separate arguments or as one text joined by ',' (',' and '\\' in a text part written '\\,' and '\\\\')`
  );
}

/**
 * A key as a person typed it (one argument, or one per part of a composite key) as its canonical text, or an
 * error saying what this source's keys look like.
 */
export function typedKey(shape: KeyShape, typed: readonly string[]): { text: string } | { error: string } {
  const { parts } = shape;
  let texts: string[] | null;
  if (typed.length === parts.length) texts = typed.map((t, i) => typedPart(parts[i]!, t));
  else if (typed.length === 1 && parts.length > 1) {
    texts = splitParts(typed[0]!, parts.length)?.map((t, i) => typedPart(parts[i]!, t)) ?? null;
  } else texts = null;
  if (texts === null || !texts.every((t, i) => partFits(parts[i]!, t)))
    return { error: `a key of this source is ${keyHelp(shape)}` };
  return { text: encodeKey(shape, texts) };
}
