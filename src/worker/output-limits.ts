// What the ledger can store of a stage's output, checked before it is written: a too large or too deeply
// nested output would be refused by the database, so the task is quarantined with the reason instead.

import { NonRetriableError } from '../core/errors.js';
import { jsonDepth } from '../core/text.js';

/** MariaDB's JSON columns refuse values nested 32 levels deep or more (JSON_VALID); MySQL allows 100. */
export const MAX_JSON_DEPTH = 31;

/** Headroom between the largest output and the server's max_allowed_packet: the rest of the statement. */
export const PACKET_HEADROOM_BYTES = 64 * 1024;

export class OutputNotStorableError extends NonRetriableError {
  constructor(message: string) {
    super(message);
    this.name = 'OutputNotStorableError';
  }
}

const mb = (bytes: number): string => `${(bytes / 1_000_000).toFixed(1)} MB`;

/** Why the serialised output of `stage` cannot be stored, or null. */
export function outputProblem(stage: string, json: string, maxBytes: number): OutputNotStorableError | null {
  // A UTF-8 character is at most 3 bytes per UTF-16 unit: skip counting bytes when it cannot matter.
  if (json.length * 3 > maxBytes) {
    const bytes = Buffer.byteLength(json);
    if (bytes > maxBytes) {
      return new OutputNotStorableError(
        `output of stage ${stage} is ${mb(bytes)} (${bytes} bytes), over the ` +
          `limit of ${maxBytes} bytes (worker.maxOutputBytes)`,
      );
    }
  }
  const depth = jsonDepth(json);
  if (depth > MAX_JSON_DEPTH) {
    return new OutputNotStorableError(
      `output of stage ${stage} nests ${depth} levels deep; the ledger stores ` +
        `JSON at most ${MAX_JSON_DEPTH} levels deep`,
    );
  }
  return null;
}
