// Collects encoded messages into batches and hands each full batch to `send`, like a chunk executor:
// a batch is flushed when the next message would take it past `maxBytes`, or `flushMs` after its first
// message, whichever comes first. Batches are sent one after another (never two in flight). When `add`
// closes a batch it returns the send of the batch *before* it: the caller builds batch N+1 while batch N
// is on the wire, and its `await` is the backpressure (at most one batch sending, one waiting).
//
// States of a batch: open (collecting) -> taken (swapped out, queued on the chain) -> sent | failed.
// After a failure every later flush rejects with the same error: the run stops at the first lost batch.

/**
 * Record overhead in Kafka's v2 format: length, attributes, timestamp and offset deltas, key and value lengths,
 * headers.
 */
export const RECORD_OVERHEAD = 32;

export interface OutgoingMessage {
  key: string;
  /** The envelope's UTF-8 bytes. */
  value: Buffer;
  /** Bytes the record takes in a batch: key + value + RECORD_OVERHEAD. */
  size: number;
  keyText: string;
  quarantined: boolean;
  /** A recompute (produce --recompute): from which stage. */
  recompute?: { fromStage: string; forced: boolean } | undefined;
  /** Set by the producer (acked-send.ts: partitionOf), so that each partition's acknowledgement can be checked. */
  partition?: number;
}

export function messageSize(key: string, value: string | Uint8Array): number {
  return (
    Buffer.byteLength(key) + (typeof value === 'string' ? Buffer.byteLength(value) : value.length) + RECORD_OVERHEAD
  );
}

export class BatchSender {
  #open: OutgoingMessage[] = [];
  #bytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();
  readonly #maxBytes: number;
  readonly #flushMs: number;
  readonly #send: (batch: OutgoingMessage[], bytes: number) => Promise<void>;

  constructor(opts: {
    maxBytes: number;
    flushMs: number;
    send: (batch: OutgoingMessage[], bytes: number) => Promise<void>;
  }) {
    this.#maxBytes = opts.maxBytes;
    this.#flushMs = opts.flushMs;
    this.#send = opts.send;
  }

  get maxBytes(): number {
    return this.#maxBytes;
  }

  /** Adds a message (its size must be <= maxBytes). When it closes a batch, returns the send before that one. */
  add(msg: OutgoingMessage): Promise<void> | undefined {
    let closed: Promise<void> | undefined;
    if (this.#open.length > 0 && this.#bytes + msg.size > this.#maxBytes) {
      closed = this.#chain;
      this.flush().catch(() => {});
    }
    this.#open.push(msg);
    this.#bytes += msg.size;
    if (this.#open.length === 1) {
      this.#timer = setTimeout(() => {
        // A failure here is seen by whoever awaits the chain next.
        this.flush().catch(() => {});
      }, this.#flushMs);
    }
    return closed;
  }

  /** Sends whatever is collected; resolves when it (and every earlier batch) is sent. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#open.length > 0) {
      const batch = this.#open;
      const bytes = this.#bytes;
      this.#open = [];
      this.#bytes = 0;
      this.#chain = this.#chain.then(() => this.#send(batch, bytes));
    }
    return this.#chain;
  }

  /** Resolves once every send already started has ended, whatever its outcome (before the producer disconnects). */
  settled(): Promise<void> {
    return this.#chain.catch(() => {});
  }

  /** Drops what is collected but not yet sent (a forced stop); returns how many messages that was. */
  discard(): number {
    clearTimeout(this.#timer);
    const n = this.#open.length;
    this.#open = [];
    this.#bytes = 0;
    return n;
  }
}
