// What the checks of the user's tables found, as every query builder and writer sees it: the key's parts (their
// columns and kinds, key-shape.ts), and the result table's. Apart from source.ts and results-table.ts, which both
// need it, so neither imports the other.

import type { ResultsConfig, SourceConfig } from '../config/config.js';
import type { FitProblem } from './key-fit.js';
import type { KeyPart, PartKind } from './key-shape.js';

/** One part's kind, or 'composite' for a key of several columns. */
export type KeyKind = PartKind | 'composite';

export interface SourceInfo extends SourceConfig {
  keyKind: KeyKind;
  /** The key's columns in order, as the database describes them (result keys are checked against them). */
  parts: KeyPart[];
  /** The user's result table, when the pipeline has one (see results-table.ts): it defines "done". */
  results?: ResultsInfo;
}

export interface ResultsInfo extends ResultsConfig {
  keyKind: KeyKind;
  /** The result key's columns, one per source key part, in the same order. */
  parts: KeyPart[];
  /**
   * How the key column can merge or cut source keys, when `mergeKeys` accepted that (null: it cannot).
   * Merged keys are then matched under the column's collation, not byte for byte.
   */
  merging: FitProblem | null;
}

const INT_TYPES = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint']);
const STRING_TYPES = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext']);

/** The kind of key a column can hold, or null when sluice cannot compare it exactly. */
export function columnKind(type: string, scale: number | null): PartKind | null {
  if (INT_TYPES.has(type)) return 'int';
  // DECIMAL(n,0) holds integers; its canonical text has no fraction. A scale above 0 would have several texts
  // for one number ('1.50' / '1.5'): refused.
  if (type === 'decimal' && scale === 0) return 'int';
  if (STRING_TYPES.has(type)) return 'string';
  if (type === 'binary' || type === 'varbinary') return 'binary';
  if (type === 'uuid') return 'uuid';
  return null;
}

/** The kind of a key of these parts. */
export const keyKindOf = (parts: readonly KeyPart[]): KeyKind => (parts.length === 1 ? parts[0]!.kind : 'composite');
