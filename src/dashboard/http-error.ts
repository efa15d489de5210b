// An answer other than 200, with the status and a one-line message the client reads (`{"error": ...}`, plus
// any figures it needs, such as a requeue's new count on 409). Not logged: it is the client's to fix.

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}
