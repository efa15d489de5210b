// How a pending row becomes a Kafka message: its envelope encoded to bytes once (kafkajs writes a Buffer as it
// is, and its length sizes the batch), its partition chosen as kafkajs' default partitioner would. A row that
// cannot become a message (an empty or unserialisable key, a payload that cannot be serialised, a message over
// the batch limit) is a skip with its reason, never a failed run.

import {
  ENVELOPE_VERSION,
  envelopeEncoder,
  keyProblem,
  payloadFromRow,
  type EnvelopeEncode,
} from '../core/envelope.js';
import { coerceError } from '../core/errors.js';
import type { PendingRow } from '../ledger/pending.js';
import { partitionOf } from './acked-send.js';
import { messageSize, type OutgoingMessage } from './batch-sender.js';

export type SkipKind = 'tooLarge' | 'unserialisable' | 'emptyKey';

export interface Skip {
  skip: SkipKind;
  key: string;
  reason: string;
}

/** What every message of one page shares: the row's shape, the envelope's fixed parts, the limits. */
export interface PageEncoder {
  shape: ((row: Record<string, unknown>) => unknown) | undefined;
  envelope: EnvelopeEncode;
  batchLimitBytes: number;
  partitions: number;
}

export interface EncoderParts {
  pipeline: string;
  ledger: string;
  runId: string;
  shape: ((row: Record<string, unknown>) => unknown) | undefined;
  batchLimitBytes: number;
  partitions: number;
}

/** One page's encoder; `producedAt` is the page's time, shared by its envelopes. */
export function pageEncoder(parts: EncoderParts, producedAt: string): PageEncoder {
  const { pipeline, ledger, runId, shape, batchLimitBytes, partitions } = parts;
  return {
    shape,
    batchLimitBytes,
    partitions,
    envelope: envelopeEncoder({ v: ENVELOPE_VERSION, pipeline, ledger, runId, producedAt }),
  };
}

export function encodeRow(row: PendingRow, enc: PageEncoder): OutgoingMessage | Skip {
  const problem = keyProblem(row.keyText);
  if (problem !== null) {
    // An empty key is a real row that cannot become a task; it is listed with its row so it can be fixed.
    if (row.keyText === '') return { skip: 'emptyKey', key: '', reason: `${problem}: row ${rowPreview(row.row)}` };
    return { skip: 'unserialisable', key: row.keyText.slice(0, 200), reason: problem };
  }
  let value: Buffer;
  try {
    const payload = enc.shape === undefined ? payloadFromRow(row.row) : enc.shape(row.row);
    value = Buffer.from(enc.envelope(row.key, payload, row.previousDispatches + 1, row.parts), 'utf8');
  } catch (err) {
    return {
      skip: 'unserialisable',
      key: row.keyText,
      reason: `payload cannot be serialised: ${coerceError(err).message}`,
    };
  }
  const size = messageSize(row.keyText, value);
  if (size > enc.batchLimitBytes) {
    const reason =
      `message is ${size} bytes; the limit is ${enc.batchLimitBytes} ` +
      `(producer.batchBytes / the topic's max.message.bytes)`;
    return { skip: 'tooLarge', key: row.keyText, reason };
  }
  return {
    key: row.keyText,
    value,
    size,
    keyText: row.keyText,
    quarantined: row.quarantined,
    recompute: row.recompute,
    partition: partitionOf(row.keyText, enc.partitions),
  };
}

function rowPreview(row: Record<string, unknown>): string {
  try {
    const text = JSON.stringify(row, (_k, v: unknown) =>
      typeof v === 'bigint' ? String(v) : Buffer.isBuffer(v) ? `<${v.length} bytes>` : v,
    );
    return text.length > 300 ? `${text.slice(0, 297)}...` : text;
  } catch {
    return '(row not printable)';
  }
}
