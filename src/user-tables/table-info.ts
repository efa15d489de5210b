// What the checks of the user's tables found, as every query builder and writer sees it: the key's kind and
// column, and the result table's key column. Apart from source.ts and results-table.ts, which both need it,
// so neither imports the other.

import type { ResultsConfig, SourceConfig } from '../config/config.js';
import type { ColumnMeta, FitProblem } from './key-fit.js';

export type KeyKind = 'int' | 'string';

export interface SourceInfo extends SourceConfig {
  keyKind: KeyKind;
  /** The key column as the database describes it (result keys are checked against it). */
  keyColumn: ColumnMeta;
  /** The user's result table, when the pipeline has one (see results-table.ts): it defines "done". */
  results?: ResultsInfo;
}

export interface ResultsInfo extends ResultsConfig {
  keyKind: KeyKind;
  /** Character set and collation of a text key column (null for integers). */
  charset: string | null;
  collation: string | null;
  keyColumn: ColumnMeta;
  /**
   * How the key column can merge or cut source keys, when `mergeKeys` accepted that (null: it cannot).
   * Merged keys are then matched under the column's collation, not byte for byte.
   */
  merging: FitProblem | null;
}

const INT_TYPES = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint']);
const STRING_TYPES = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext']);

/** The kind of key a column can hold, or null when sluice cannot compare it exactly. */
export function columnKind(type: string, scale: number | null): KeyKind | null {
  if (INT_TYPES.has(type)) return 'int';
  // DECIMAL(n,0) holds integers; its canonical text has no fraction. A scale above 0 would have several texts
  // for one number ('1.50' / '1.5'): refused.
  if (type === 'decimal' && scale === 0) return 'int';
  if (STRING_TYPES.has(type)) return 'string';
  return null;
}
