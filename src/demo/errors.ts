// The demo's own errors, as a user's stage code would define them: sluice needs only `retriable` (and reads
// the class name as the error class), so the codes stay here, not in sluice's list of its own.

export type NerErrorCode = 'NER_UNAVAILABLE' | 'NER_HTTP';

/** The entity-recognition service could not be called, or answered with an error status. */
export class NerError extends Error {
  readonly code: NerErrorCode;
  readonly retriable: boolean;

  constructor(code: NerErrorCode, message: string, options: { retriable: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NerError';
    this.code = code;
    this.retriable = options.retriable;
  }
}
