// The message format on the topic: one JSON envelope per task, versioned so that fetchers can refuse
// what they do not understand. Documented in the README ("Message format").

export const ENVELOPE_VERSION = 1;

export interface TaskEnvelope {
  v: typeof ENVELOPE_VERSION;
  pipeline: string;
  /** The source key: a number for integer keys (a string past 2^53), otherwise a string. */
  key: string | number;
  payload: unknown;
  /** 1 on the first publication of the task, +1 on each republication (stale or --retry-dead). */
  attempt: number;
  /** The producer run that published it. */
  runId: string;
  /** ISO-8601 time of publication. */
  producedAt: string;
}

/** Binary columns become base64 text; everything else is left for JSON.stringify. */
export function payloadFromRow(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) out[k] = Buffer.isBuffer(v) ? v.toString('base64') : v;
  return out;
}

/** Serialises an envelope; throws when the payload cannot be represented as JSON (BigInt, cycles, ...). */
export function encodeEnvelope(e: TaskEnvelope): string {
  const json = JSON.stringify(e);
  if (json === undefined) throw new TypeError('envelope is not serialisable');
  return json;
}
