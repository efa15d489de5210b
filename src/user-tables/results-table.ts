// A pipeline's result table of the user's own (`results` in the config): where "done" is defined and where
// workers write each task's result. Checked at start, before anything is written: the table and its columns
// exist, its key is NOT NULL with a unique index of its own (an upsert needs it), the key's type matches
// the source key's (integer with integer, text with text), and it can hold every source key as itself
// (key-fit.ts: no collation, character set, length or range that merges or cuts keys, unless the user
// accepts merged keys with results.mergeKeys). Each problem is one SourceError naming the key.

import type { RowDataPacket } from 'mysql2/promise';
import type { ResultsConfig } from '../config/config.js';
import { SourceError } from '../core/errors.js';
import { quoteIdentifier } from '../core/identifiers.js';
import type { Pool } from '../db/pool.js';
import { columnKind, type ResultsInfo, type SourceInfo } from './table-info.js';
import { asResultKey, columnsOf, fitMessage, intRange, keyFit, modifyStatement, splitTable } from './key-fit.js';

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
export async function checkResults(
  pool: Pool,
  results: ResultsConfig,
  source: Pick<SourceInfo, 'table' | 'keyKind' | 'keyColumn'>,
  pipeline: string,
  opts: { refuseMisfit?: boolean } = {},
): Promise<ResultsInfo> {
  const sourceKind = source.keyKind;
  const at = `pipelines.${pipeline}.results`;
  const cols = await columnsOf(pool, results.table);
  if (cols.size === 0) {
    throw new SourceError('RESULTS_MISSING', `${at}.table: result table '${results.table}' does not exist`, {
      hint: 'create it, or fix results.table in the config',
    });
  }
  const missing = [results.key, ...results.columns].filter((c) => !cols.has(c.toLowerCase()));
  if (missing.length > 0) {
    throw new SourceError(
      'RESULTS_COLUMNS',
      `${at}: result table '${results.table}' has no column(s) ${missing.join(', ')}`,
      { hint: 'check results.key and results.columns' },
    );
  }
  const key = cols.get(results.key.toLowerCase())!;
  const keyKind = columnKind(key.type, key.scale);
  if (keyKind === null || keyKind !== sourceKind) {
    throw new SourceError(
      'RESULTS_KEY_TYPE',
      `${at}.key: '${results.table}.${results.key}' is ${key.columnType}, the ` +
        `source key is ${sourceKind === 'int' ? 'an integer' : 'text'}; they ` +
        `must be both integers or both text`,
      {
        hint:
          `${modifyStatement(results.table, results.key, source.keyColumn)}, or ` +
          `point results.key at a column of the same kind as source.key`,
      },
    );
  }
  if (key.nullable) {
    throw new SourceError(
      'RESULTS_KEY_NULLABLE',
      `${at}.key: '${results.table}.${results.key}' may be NULL; sluice needs a NOT NULL key`,
      {
        hint: `ALTER TABLE ${results.table} MODIFY ${results.key} ${key.columnType} NOT NULL`,
      },
    );
  }
  if (!(await hasOwnUniqueIndex(pool, results.table, results.key))) {
    const [[dup]] = await pool.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n FROM ` +
        `(SELECT 1 FROM ${quoteIdentifier(results.table)} ` +
        `GROUP BY ${quoteIdentifier(results.key)} HAVING COUNT(*) > 1) d`,
    );
    const n = Number(dup?.n ?? 0);
    const dups = n === 0 ? 'it holds no duplicate keys' : `it holds ${n} duplicated key(s): keep one row each first`;
    throw new SourceError(
      'RESULTS_KEY_NOT_UNIQUE',
      `${at}.key: '${results.table}.${results.key}' has no unique index of its own (an upsert needs one); ${dups}`,
      {
        hint: `ALTER TABLE ${results.table} ADD UNIQUE (${results.key})`,
      },
    );
  }
  const fit = keyFit(source.keyColumn, key, keyKind);
  if (fit !== null && (fit.class === 'cuts' || !results.mergeKeys) && opts.refuseMisfit !== false) {
    const { message, hint } = fitMessage(
      fit,
      { table: source.table, col: source.keyColumn },
      { table: results.table, col: key },
    );
    throw new SourceError(fit.class === 'merges' ? 'RESULTS_KEY_MERGES' : 'RESULTS_KEY_CUTS', `${at}.key: ${message}`, {
      hint,
    });
  }
  return { ...results, keyKind, charset: key.charset, collation: key.collation, keyColumn: key, merging: fit };
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
  src: Pick<SourceInfo, 'table' | 'key' | 'keyColumn'>,
  info: ResultsInfo,
): Promise<Collisions> {
  const none: Collisions = { keys: 0, example: [], cut: 0, cutExample: null };
  if (info.merging === null) return none;
  const sk = quoteIdentifier(src.key);
  const table = quoteIdentifier(src.table);
  const cutBy = async (where: string): Promise<Pick<Collisions, 'cut' | 'cutExample'>> => {
    const [[row]] = await pool.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n, MIN(CAST(CONVERT(${sk} USING utf8mb4) AS BINARY)) AS a FROM ${table} WHERE ${where}`,
    );
    return { cut: Number(row?.n ?? 0), cutExample: Number(row?.n ?? 0) === 0 ? null : text(row?.a) };
  };
  if (info.keyKind === 'int') {
    const [lo, hi] = intRange(info.keyColumn);
    return { ...none, ...(await cutBy(`${sk} < ${lo} OR ${sk} > ${hi}`)) };
  }
  const bytes = `CAST(CONVERT(${sk} USING utf8mb4) AS BINARY)`;
  const c = info.keyColumn;
  const cuts = [`${bytes} <> CAST(CONVERT(${asResultKey(info, sk)} USING utf8mb4) AS BINARY)`];
  if (c.chars !== null) cuts.push(`CHAR_LENGTH(${sk}) > ${c.chars}`);
  if (c.type === 'char') cuts.push(`HEX(RIGHT(${sk}, 1)) = '20'`);
  const cut = await cutBy(cuts.join(' OR '));
  // The key as the column would store it: in its character set, cut to its length, trailing spaces dropped by CHAR.
  let image = sk;
  if (c.chars !== null) image = `LEFT(${image}, ${c.chars})`;
  if (c.type === 'char') image = `RTRIM(${image})`;
  image = asResultKey(info, image);
  const groups = `FROM ${table} GROUP BY ${image} HAVING COUNT(*) > 1`;
  const [[count]] = await pool.query<RowDataPacket[]>(
    `SELECT COALESCE(SUM(n), 0) AS n FROM (SELECT COUNT(*) AS n ${groups}) d`,
  );
  if (Number(count?.n ?? 0) === 0) return { ...none, ...cut };
  const [[pair]] = await pool.query<RowDataPacket[]>(`SELECT MIN(${bytes}) AS a, MAX(${bytes}) AS b ${groups} LIMIT 1`);
  return { keys: Number(count?.n), example: [text(pair?.a), text(pair?.b)], ...cut };
}
