// The task contract every side reaches: the producer writes it, the fetcher validates it, the spool stores it, the
// worker runs it. One JSON envelope per task on the topic, versioned so that fetchers can refuse what they do not
// understand (docs/operations.md, "Message format"); and the task's key as sluice carries it everywhere: its
// canonical text. The database produces that text from the source row (user-tables/key-sql.ts), the envelope carries
// it (a number when it is a safe integer), the ledger stores its UTF-8 bytes, and every lookup compares those bytes.
// Nothing else ever derives a key's text, and its limit is defined here only.

export const ENVELOPE_VERSION = 1;

export interface TaskEnvelope {
  v: typeof ENVELOPE_VERSION;
  pipeline: string;
  /**
   * The ledger (database) that published it (ledger/ledger-id.ts). Optional: messages of producers before it was
   * added have none and run as before; a fetcher or worker of another ledger never runs one that has it.
   */
  ledger?: string;
  /**
   * The source key's canonical text: a number for integer keys (a string past 2^53), otherwise a string (the hex of
   * a binary or UUID key; a composite key's parts joined, user-tables/key-shape.ts).
   */
  key: string | number;
  /**
   * A composite key's parts, in the source key's column order (integers as numbers when exact). Optional: absent
   * for a one-column key, and consumers that read only `key` keep working.
   */
  parts?: Array<string | number>;
  payload: unknown;
  /** 1 on the first publication of the task, +1 on each republication (stale or --retry-quarantined). */
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
 * as JSON (BigInt, cycles, ...).
 */
export function encodeEnvelope(e: TaskEnvelope): string {
  return envelopeEncoder(e)(e.key, e.payload, e.attempt, e.parts);
}

export type EnvelopeFixed = Pick<TaskEnvelope, 'v' | 'pipeline' | 'ledger' | 'runId' | 'producedAt'>;

/**
 * The producer's hot path: what every task of a page shares (version, pipeline, ledger, run, time) is
 * serialised once, and each task adds its key, payload and attempt. The same text as encodeEnvelope.
 */
export function envelopeEncoder(f: EnvelopeFixed): EnvelopeEncode {
  const ledger = f.ledger === undefined ? '' : `,"ledger":${JSON.stringify(f.ledger)}`;
  const head = `{"v":${f.v},"pipeline":${JSON.stringify(f.pipeline)}${ledger},"key":`;
  const tail = `,"runId":${JSON.stringify(f.runId)},"producedAt":${JSON.stringify(f.producedAt)}}`;
  return (key, payload, attempt, parts) => {
    const k = typeof key === 'number' ? String(key) : JSON.stringify(key);
    const p = parts === undefined ? '' : `,"parts":${JSON.stringify(parts)}`;
    return `${head}${k}${p},"payload":${JSON.stringify(payload) ?? 'null'},"attempt":${attempt}${tail}`;
  };
}

export type EnvelopeEncode = (
  key: string | number,
  payload: unknown,
  attempt: number,
  parts?: ReadonlyArray<string | number>,
) => string;

/** The longest key sluice stores (ledger columns are VARBINARY(2048)). */
export const MAX_KEY_BYTES = 2048;

/** The text form of an envelope key: what the ledger stores and Kafka's message key carries. */
export function keyText(key: string | number): string {
  return typeof key === 'number' ? String(key) : key;
}

/** The envelope form of a canonical key text: a number when an integer key fits in a double exactly. */
export function envelopeKey(text: string, integer: boolean): string | number {
  if (!integer) return text;
  const n = Number(text);
  return Number.isSafeInteger(n) && String(n) === text ? n : text;
}

/** Why a key cannot be a task key, or null when it can. */
export function keyProblem(text: string): string | null {
  if (text.length === 0) return 'key is empty';
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_KEY_BYTES) return `key is ${bytes} bytes of UTF-8; the most sluice stores is ${MAX_KEY_BYTES}`;
  return null;
}

/** Why a message of ledger `theirs` must not run here, or null (a message without a ledger runs as before). */
export function otherLedger(theirs: string | undefined, ours: string | null): string | null {
  if (theirs === undefined || ours === null || theirs === ours) return null;
  return (
    `message is from ledger ${JSON.stringify(theirs)}, not this ` +
    `deployment's ${JSON.stringify(ours)}: another deployment publishes to ` +
    `this topic (give each its own ` +
    `pipelines.<name>.topic)`
  );
}
