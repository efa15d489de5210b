// The one place SQL turns a source key into its canonical text (key-shape.ts) and a list of task keys into rows,
// and meets a source row with its result. Every query that compares a source row with the ledger goes through
// here, so no column type can make two queries disagree about a key:
//   - integers: `CAST(k + 0 AS CHAR)`, the plain decimal form. `+ 0` drops ZEROFILL padding ('00042' -> '42')
//     and keeps unsigned BIGINT beyond 2^63 and DECIMAL(n,0) exact;
//   - text: `CONVERT(k USING utf8mb4)`, the key's characters as UTF-8 whatever the column's charset;
//   - bytes and UUIDs: `LOWER(HEX(k))`; a composite key: its parts joined (key-shape.ts).
// The ledger stores those bytes in VARBINARY(2048) columns; comparing a VARBINARY with a string compares
// bytes, so neither a case-insensitive collation nor PAD SPACE can make two keys one.

import { MAX_KEY_BYTES } from '../core/envelope.js';
import { quoteIdentifier } from '../core/identifiers.js';
import type { SourceInfo } from './table-info.js';
import { asResultKey, exactKeys } from './key-fit.js';
import { INTEGER_KEY, keyTextSql } from './key-shape.js';

export { INTEGER_KEY, keyTextSql };

/**
 * A derived table of the keys in one JSON array parameter, column `k`. One statement for any number of
 * keys; wide enough for the longest key (2,048 characters hold any 2,048 bytes), so nothing is cut.
 */
export function jsonKeysTable(alias = 'j'): string {
  return `JSON_TABLE(?, '$[*]' COLUMNS (k VARCHAR(${MAX_KEY_BYTES}) CHARACTER SET utf8mb4 PATH '$')) ${alias}`;
}

/** The source as a FROM item, alias `s`: the table, or only the rows its `where` selects (merged by the planner). */
export function sourceFrom(src: Pick<SourceInfo, 'table' | 'where'>): string {
  const table = quoteIdentifier(src.table);
  return src.where === undefined ? `${table} s` : `(SELECT * FROM ${table} WHERE (${src.where})) s`;
}

/**
 * How a source row `s` meets its result: sluice_results (alias r), or the user's result table (alias u).
 * `done` is true on a row that has one. Each part of the key meets its result column: a text part through the
 * result column's own collation (so its unique index is used) and then byte for byte, so no collation makes two
 * keys one; integers, bytes and UUIDs as themselves.
 */
export function doneJoin(
  src: SourceInfo,
  pipeline: string,
  params: unknown[],
): { sql: string; done: string; merged: string | null } {
  const r = src.results;
  if (r === undefined) {
    params.push(pipeline);
    return {
      sql: `LEFT JOIN sluice_results r ON r.pipeline = ? AND r.task_key = ${keyTextSql(src)}`,
      done: 'r.task_key IS NOT NULL',
      merged: null,
    };
  }
  const exact = exactKeys(r);
  const on = src.parts.map((sp, i) => {
    const rp = r.parts[i]!;
    const uk = `u.${quoteIdentifier(rp.column)}`;
    const sk = `s.${quoteIdentifier(sp.column)}`;
    if (sp.kind !== 'string') return `${uk} = ${sk}`;
    const viaIndex = `${uk} = ${asResultKey(rp.meta, sk)}`;
    // Unless the user accepted merged keys (results.mergeKeys): then the merged row is the result of all.
    return exact
      ? `${viaIndex} AND CAST(CONVERT(${uk} USING utf8mb4) AS BINARY) = CAST(CONVERT(${sk} USING utf8mb4) AS BINARY)`
      : viaIndex;
  });
  const first = `u.${quoteIdentifier(r.parts[0]!.column)}`;
  // `merged`: the result key, where several source rows may share its row (COUNT(DISTINCT) tells how many rows).
  return {
    sql: `LEFT JOIN ${quoteIdentifier(r.table)} u ON ${on.join(' AND ')}`,
    done: `${first} IS NOT NULL`,
    merged: exact ? null : first,
  };
}
