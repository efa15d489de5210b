// The last stage's output as a row of the user's result table, through the pipeline's `results.row`. A row
// function that throws, returns something other than an object, or names a column outside
// `results.columns` fails that task alone (quarantined with the reason); other tasks go on.

import { coerceError, NonRetriableError } from '../core/errors.js';
import type { ResultsInfo } from '../user-tables/table-info.js';
import type { TaskEnvelope } from '../core/envelope.js';

export class ResultRowError extends NonRetriableError {}

/** A value mysql2 writes as it is; objects and arrays become JSON text (for JSON or TEXT columns). */
function sqlValue(v: unknown): unknown {
  if (v === undefined || v === null) return null;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v !== 'object' || v instanceof Date || Buffer.isBuffer(v)) return v;
  return JSON.stringify(v);
}

/** The values for `results.columns`, in order, or the error that quarantines the task. */
export function userRow(task: TaskEnvelope, output: unknown, r: ResultsInfo): unknown[] | ResultRowError {
  let mapped: unknown;
  try {
    mapped = r.row(
      output,
      task.parts === undefined
        ? { key: task.key, payload: task.payload }
        : { key: task.key, parts: task.parts, payload: task.payload },
    );
  } catch (err) {
    return new ResultRowError(`results.row threw: ${coerceError(err).message}`);
  }
  if (mapped === null || typeof mapped !== 'object' || Array.isArray(mapped)) {
    return new ResultRowError(
      `results.row must return an object of column values, ` +
        `returned ${Array.isArray(mapped) ? 'an array' : String(mapped)}`,
    );
  }
  const row = mapped as Record<string, unknown>;
  const extra = Object.keys(row).filter((k) => !r.columns.includes(k));
  if (extra.length > 0) {
    return new ResultRowError(
      `results.row returned column(s) ${extra.join(', ')} outside results.columns (${r.columns.join(', ')})`,
    );
  }
  try {
    return r.columns.map((c) => sqlValue(row[c]));
  } catch (err) {
    return new ResultRowError(`results.row returned a value that cannot be written: ${coerceError(err).message}`);
  }
}
