// A pipeline's result table of the user's own (`results` in the config): where "done" is defined and where
// workers write each task's result. Checked at start, before anything is written: the table and its columns
// exist, its key (one column per source key part) is NOT NULL with a unique index of its own (an upsert needs
// it), each part is of the source part's kind (integers, text, bytes, UUIDs), and it can hold every source key
// as itself (key-fit.ts: no collation, character set, length or range that merges or cuts keys, unless the user
// accepts merged keys with results.mergeKeys). Each problem is one SourceError naming the key.

import type { RowDataPacket } from 'mysql2/promise';
import type { ResultsConfig } from '../config/config.js';
import { SourceError } from '../core/errors.js';
import { quoteIdentifier } from '../core/identifiers.js';
import type { Pool } from '../db/pool.js';
import { columnKind, keyKindOf, type ResultsInfo, type SourceInfo } from './table-info.js';
import {
  asResultKey,
  columnsOf,
  fitMessage,
  intRange,
  keyFit,
  modifyStatement,
  type ColumnMeta,
  type FitProblem,
} from './key-fit.js';
import { keyColumns, type KeyPart, type PartKind } from './key-shape.js';
import { uniqueIndexes } from './source.js';

const kindName = (k: PartKind): string =>
  k === 'int' ? 'an integer' : k === 'string' ? 'text' : k === 'binary' ? 'bytes (BINARY/VARBINARY)' : 'a UUID';

/** One result key column against its source key part: the same kind, NOT NULL, able to hold every key. */
function checkPart(
  r: ResultsConfig,
  sp: KeyPart,
  col: ColumnMeta,
  source: { table: string },
  at: string,
  refuseMisfit: boolean,
): { part: KeyPart; fit: FitProblem | null } {
  const kind = columnKind(col.type, col.scale);
  if (kind === null || kind !== sp.kind) {
    throw new SourceError(
      'RESULTS_KEY_TYPE',
      `${at}.key: '${r.table}.${col.name}' is ${col.columnType}, the source key` +
        `${keyColumns(r.key).length > 1 ? ` part ${sp.column}` : ''} is ${kindName(sp.kind)}; they must be of one kind`,
      {
        hint:
          `${modifyStatement(r.table, col.name, sp.meta)}, or ` +
          `point results.key at a column of the same kind as source.key`,
      },
    );
  }
  if (col.nullable) {
    throw new SourceError(
      'RESULTS_KEY_NULLABLE',
      `${at}.key: '${r.table}.${col.name}' may be NULL; sluice needs a NOT NULL key`,
      { hint: `ALTER TABLE ${r.table} MODIFY ${col.name} ${col.columnType} NOT NULL` },
    );
  }
  const fit = keyFit(sp.meta, col, kind);
  if (fit !== null && (fit.class === 'cuts' || !r.mergeKeys) && refuseMisfit) {
    const { message, hint } = fitMessage(fit, { table: source.table, col: sp.meta }, { table: r.table, col });
    throw new SourceError(fit.class === 'merges' ? 'RESULTS_KEY_MERGES' : 'RESULTS_KEY_CUTS', `${at}.key: ${message}`, {
      hint,
    });
  }
  return { part: { column: col.name, kind, meta: col }, fit };
}

/** The result key's columns have a unique index of their own (an upsert needs it). */
async function checkUniqueKey(pool: Pool, r: ResultsConfig, keys: string[], at: string): Promise<void> {
  const indexes = await uniqueIndexes(pool, r.table);
  const want = keys.map((k) => k.toLowerCase()).sort();
  if (indexes.some((cols) => cols.length === want.length && [...cols].sort().every((c, i) => c === want[i]))) return;
  const list = keys.map(quoteIdentifier).join(', ');
  const [[dup]] = await pool.query<RowDataPacket[]>(
    `SELECT COUNT(*) AS n FROM (SELECT 1 FROM ${quoteIdentifier(r.table)} GROUP BY ${list} HAVING COUNT(*) > 1) d`,
  );
  const n = Number(dup?.n ?? 0);
  const dups = n === 0 ? 'it holds no duplicate keys' : `it holds ${n} duplicated key(s): keep one row each first`;
  const what = keys.length === 1 ? `'${r.table}.${keys[0]}' has` : `(${keys.join(', ')}) of '${r.table}' have`;
  throw new SourceError(
    'RESULTS_KEY_NOT_UNIQUE',
    `${at}.key: ${what} no unique index of ${keys.length === 1 ? 'its' : 'their'} own (an upsert needs one); ${dups}`,
    { hint: `ALTER TABLE ${r.table} ADD UNIQUE (${keys.join(', ')})` },
  );
}

/** Inspects the result table against the source key's parts; throws a SourceError (exit 2) for each problem. */
export async function checkResults(
  pool: Pool,
  results: ResultsConfig,
  source: Pick<SourceInfo, 'table' | 'parts'>,
  pipeline: string,
  opts: { refuseMisfit?: boolean } = {},
): Promise<ResultsInfo> {
  const at = `pipelines.${pipeline}.results`;
  const cols = await columnsOf(pool, results.table);
  if (cols.size === 0) {
    throw new SourceError('RESULTS_MISSING', `${at}.table: result table '${results.table}' does not exist`, {
      hint: 'create it, or fix results.table in the config',
    });
  }
  const keys = keyColumns(results.key);
  const missing = [...keys, ...results.columns].filter((c) => !cols.has(c.toLowerCase()));
  if (missing.length > 0) {
    throw new SourceError(
      'RESULTS_COLUMNS',
      `${at}: result table '${results.table}' has no column(s) ${missing.join(', ')}`,
      { hint: 'check results.key and results.columns' },
    );
  }
  if (keys.length !== source.parts.length) {
    throw new SourceError(
      'RESULTS_KEY_SHAPE',
      `${at}.key: names ${keys.length} column(s), the source key has ${source.parts.length}`,
      { hint: `give results.key one column per source key column (${source.parts.map((p) => p.column).join(', ')})` },
    );
  }
  if (keys.length > 1 && results.mergeKeys) {
    throw new SourceError('RESULTS_KEY_SHAPE', `${at}.mergeKeys: merged keys are for a one-column key only`, {
      hint: 'remove results.mergeKeys, or give the result key columns the collations of the source key columns',
    });
  }
  const checked = source.parts.map((sp, i) =>
    checkPart(results, sp, cols.get(keys[i]!.toLowerCase())!, source, at, opts.refuseMisfit !== false),
  );
  await checkUniqueKey(pool, results, keys, at);
  const parts = checked.map((c) => c.part);
  const misfit = checked.findIndex((c) => c.fit !== null);
  const merging = misfit === -1 ? null : { ...checked[misfit]!.fit!, part: misfit };
  return { ...results, keyKind: keyKindOf(parts), parts, merging };
}

export interface Collisions {
  /** Source keys that share a result key with another. */
  keys: number;
  /** Two source keys that become one result key, as the source holds them. */
  example: string[];
  /**
   * Source keys the column cannot store as they are (too long, a character its set lacks, trailing spaces in CHAR,
   * out of range).
   */
  cut: number;
  cutExample: string | null;
}

const text = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));

/**
 * The source keys the result key column merges or cuts today: GROUP BYs over the whole source, for
 * `doctor` (too slow for every start). Nothing when the column fits.
 */
export async function collisions(
  pool: Pool,
  src: Pick<SourceInfo, 'table' | 'parts'>,
  info: ResultsInfo,
): Promise<Collisions> {
  const none: Collisions = { keys: 0, example: [], cut: 0, cutExample: null };
  // A composite result key is refused at start when a part can merge or cut (checkResults): nothing to count.
  if (info.merging === null || src.parts.length !== 1) return none;
  const sk = quoteIdentifier(src.parts[0]!.column);
  const table = quoteIdentifier(src.table);
  const cutBy = async (where: string): Promise<Pick<Collisions, 'cut' | 'cutExample'>> => {
    const [[row]] = await pool.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n, MIN(CAST(CONVERT(${sk} USING utf8mb4) AS BINARY)) AS a FROM ${table} WHERE ${where}`,
    );
    return { cut: Number(row?.n ?? 0), cutExample: Number(row?.n ?? 0) === 0 ? null : text(row?.a) };
  };
  const c = info.parts[0]!.meta;
  if (info.keyKind === 'int') {
    const [lo, hi] = intRange(c);
    return { ...none, ...(await cutBy(`${sk} < ${lo} OR ${sk} > ${hi}`)) };
  }
  if (info.keyKind !== 'string') return none;
  const bytes = `CAST(CONVERT(${sk} USING utf8mb4) AS BINARY)`;
  const cuts = [`${bytes} <> CAST(CONVERT(${asResultKey(c, sk)} USING utf8mb4) AS BINARY)`];
  if (c.chars !== null) cuts.push(`CHAR_LENGTH(${sk}) > ${c.chars}`);
  if (c.type === 'char') cuts.push(`HEX(RIGHT(${sk}, 1)) = '20'`);
  const cut = await cutBy(cuts.join(' OR '));
  // The key as the column would store it: in its character set, cut to its length, trailing spaces dropped by CHAR.
  let image = sk;
  if (c.chars !== null) image = `LEFT(${image}, ${c.chars})`;
  if (c.type === 'char') image = `RTRIM(${image})`;
  image = asResultKey(c, image);
  const groups = `FROM ${table} GROUP BY ${image} HAVING COUNT(*) > 1`;
  const [[count]] = await pool.query<RowDataPacket[]>(
    `SELECT COALESCE(SUM(n), 0) AS n FROM (SELECT COUNT(*) AS n ${groups}) d`,
  );
  if (Number(count?.n ?? 0) === 0) return { ...none, ...cut };
  const [[pair]] = await pool.query<RowDataPacket[]>(`SELECT MIN(${bytes}) AS a, MAX(${bytes}) AS b ${groups} LIMIT 1`);
  return { keys: Number(count?.n), example: [text(pair?.a), text(pair?.b)], ...cut };
}
