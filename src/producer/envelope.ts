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

/** Binary columns become base64 text (in place: the row object is the producer's own). */
export function payloadFromRow(row: Record<string, unknown>): Record<string, unknown> {
  for (const k in row) {
    const v = row[k];
    if (Buffer.isBuffer(v)) row[k] = v.toString('base64');
  }
  return row;
}

/**
 * Serialises an envelope, fields in the documented order; throws when the payload cannot be represented
 * as JSON (BigInt, cycles, ...). Assembled from parts: it runs once per task on the producer's hot path.
 */
export function encodeEnvelope(e: TaskEnvelope): string {
  const payload = JSON.stringify(e.payload) ?? 'null';
  return `{"v":${e.v},"pipeline":${JSON.stringify(e.pipeline)},"key":${JSON.stringify(e.key)},"payload":${payload},"attempt":${e.attempt},"runId":${JSON.stringify(e.runId)},"producedAt":${JSON.stringify(e.producedAt)}}`;
}
