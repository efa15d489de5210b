// Decides, per Kafka message, whether it becomes a spool item or goes to quarantine, and why.

import { isUtf8 } from 'node:buffer';
import type { KafkaMessage } from 'kafkajs';
import { ENVELOPE_VERSION, MAX_KEY_BYTES, otherLedger, type TaskEnvelope } from '../core/envelope.js';
import type { SpoolLine } from '../spool/segment.js';

export type BadReason =
  | 'empty'
  | 'too-large'
  | 'binary'
  | 'not-json'
  | 'bad-envelope'
  | 'unknown-version'
  | 'other-pipeline'
  | 'other-ledger';

/** A good message: its validated task, and the segment line it becomes. */
export type Verdict =
  { ok: true; task: TaskEnvelope; line: SpoolLine } | { ok: false; reason: BadReason; detail: string };

const bad = (reason: BadReason, detail: string): Verdict => ({ ok: false, reason, detail });

/** `ledger`: this deployment's ledger id, or null when it could not be read (the worker checks then). */
export function classify(
  message: KafkaMessage,
  partition: number,
  pipeline: string,
  maxItemBytes: number,
  ledger: string | null = null,
): Verdict {
  const value = message.value;
  if (value === null || value.length === 0) return bad('empty', 'message has no value');
  if (value.length > maxItemBytes)
    return bad('too-large', `value is ${value.length} bytes; spool.maxItemBytes is ${maxItemBytes}`);
  if (!isUtf8(value)) return bad('binary', 'value is not UTF-8 text');
  const text = value.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return bad('not-json', `value is not JSON: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    return bad('bad-envelope', 'value is JSON but not an object');
  const e = parsed as Partial<TaskEnvelope> & Record<string, unknown>;
  if (e.v !== ENVELOPE_VERSION) {
    return e.v === undefined
      ? bad('bad-envelope', 'no envelope version "v"')
      : bad('unknown-version', `envelope version ${JSON.stringify(e.v)}; this fetcher reads ${ENVELOPE_VERSION}`);
  }
  if (e.pipeline !== pipeline)
    return bad(
      'other-pipeline',
      `message is for pipeline ${JSON.stringify(e.pipeline)}, not ${JSON.stringify(pipeline)}`,
    );
  if (e.ledger !== undefined && typeof e.ledger !== 'string') return bad('bad-envelope', 'ledger must be a string');
  const foreign = otherLedger(e.ledger, ledger);
  if (foreign !== null) return bad('other-ledger', foreign);
  const key = e.key;
  if (!((typeof key === 'string' && key.length > 0) || (typeof key === 'number' && Number.isSafeInteger(key)))) {
    return bad('bad-envelope', 'key must be a non-empty string or a safe integer');
  }
  if (typeof key === 'string' && Buffer.byteLength(key) > MAX_KEY_BYTES)
    return bad('bad-envelope', `key is longer than ${MAX_KEY_BYTES} bytes`);
  if (
    e.parts !== undefined &&
    !(Array.isArray(e.parts) && e.parts.every((v) => typeof v === 'string' || Number.isSafeInteger(v)))
  )
    return bad('bad-envelope', 'parts must be an array of strings and safe integers');
  if (!('payload' in e)) return bad('bad-envelope', 'no payload');
  if (typeof e.attempt !== 'number' || !Number.isInteger(e.attempt) || e.attempt < 1)
    return bad('bad-envelope', 'attempt must be a positive integer');
  const task = e as TaskEnvelope;
  // The validated bytes go into the segment as they are (no second serialisation), unless they hold a raw
  // newline (JSON whitespace), which would break the one-item-per-line format.
  const bytes = value.indexOf(0x0a) === -1 ? value : Buffer.from(JSON.stringify(task), 'utf8');
  return { ok: true, task, line: { offset: message.offset, task: bytes } };
}
