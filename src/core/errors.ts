// Typed errors. Every error sluice raises on purpose is a SluiceError with a `code` from ERROR_CODES, a
// `retriable` flag and, for the errors people hit first, a `hint` naming the command that fixes it. The code
// decides the process's exit status and whether the error is retriable when the thrower does not say; a
// bare Error from user code counts as retriable (a network blip), like a SluiceError that says so.
// Bugs (TypeError, ReferenceError, ...) are never retried: retrying a bug only hides it.

/** The CLI's exit statuses. */
export const EXIT = { ok: 0, failed: 1, usage: 2, unavailable: 3, migrations: 4, interrupted: 130 } as const;
export type ExitKind = Exclude<keyof typeof EXIT, 'ok' | 'interrupted'>;

/** Every code sluice raises: [what the exit status says, retriable unless the thrower says otherwise]. */
export const ERROR_CODES = {
  CONFIG_INVALID: ['usage', false],
  USAGE: ['usage', false],
  UNKNOWN_PIPELINE: ['usage', false],
  SOURCE_MISSING: ['usage', false],
  SOURCE_COLUMNS: ['usage', false],
  SOURCE_KEY_TYPE: ['usage', false],
  RESULTS_KEY_TYPE: ['usage', false],
  RESULTS_KEY_MERGES: ['usage', false],
  RESULTS_KEY_CUTS: ['usage', false],
  RESULTS_KEY_SHAPE: ['usage', false],
  RESULT_NOT_STORED: ['failed', false],
  SOURCE_KEY_NULLABLE: ['usage', false],
  SOURCE_KEY_NOT_UNIQUE: ['usage', false],
  SOURCE_VIEW: ['usage', false],
  SOURCE_WHERE: ['usage', false],
  SOURCE_GONE: ['usage', false],
  RESULTS_MISSING: ['usage', false],
  RESULTS_COLUMNS: ['usage', false],
  RESULTS_KEY_NULLABLE: ['usage', false],
  RESULTS_KEY_NOT_UNIQUE: ['usage', false],
  SPOOL_UNUSABLE: ['usage', false],
  DB_UNREACHABLE: ['unavailable', true],
  DB_CONNECTION_LOST: ['unavailable', true],
  DB_LOCK: ['unavailable', true],
  DB_AUTH: ['unavailable', false],
  DB_MISSING: ['unavailable', false],
  DB_ERROR: ['failed', false],
  KAFKA_UNREACHABLE: ['unavailable', true],
  KAFKA_AUTH: ['unavailable', false],
  KAFKA_CONSUMER_FAILED: ['unavailable', true],
  KAFKA_PUBLISH_FAILED: ['unavailable', true],
  KAFKA_PUBLISH_UNACKNOWLEDGED: ['unavailable', true],
  KAFKA_OTHER_LEDGER: ['usage', false],
  KAFKA_REFUSED: ['usage', false],
  MIGRATIONS_MISSING: ['migrations', false],
  MIGRATIONS_PENDING: ['migrations', false],
  MIGRATION_FAILED: ['migrations', false],
  MIGRATION_FAILED_BEFORE: ['migrations', false],
  MIGRATION_MODIFIED: ['migrations', false],
  MIGRATION_LOCKED: ['migrations', true],
  STAGE_TIMEOUT: ['failed', true],
  NON_RETRIABLE: ['failed', false],
  OVERLOAD: ['failed', true],
  LEDGER_WRITE_FAILED: ['failed', false],
  LEDGER_CLOSED: ['failed', true],
} as const satisfies Record<string, readonly [ExitKind, boolean]>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface SluiceErrorOptions {
  /** Default: the code's own (ERROR_CODES). */
  retriable?: boolean;
  hint?: string;
  cause?: unknown;
}

export class SluiceError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: SluiceErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? ERROR_CODES[code][1];
    this.hint = options.hint;
  }

  /** The CLI's exit status for this error. */
  get exitCode(): number {
    return EXIT[ERROR_CODES[this.code][0]];
  }
}

/** Bad configuration: a file, an environment variable or a flag. Lists every problem, each naming its key. */
export class ConfigError extends SluiceError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[], source?: string) {
    const where = source === undefined ? '' : ` (${source})`;
    const message =
      problems.length === 1
        ? `invalid configuration${where}: ${problems[0]}`
        : `invalid configuration${where}:\n  - ${problems.join('\n  - ')}`;
    super('CONFIG_INVALID', message);
    this.problems = problems;
  }
}

export class UsageError extends SluiceError {
  constructor(message: string, hint?: string) {
    super('USAGE', message, { hint });
  }
}

export class UnknownPipelineError extends SluiceError {
  constructor(name: string, known: readonly string[]) {
    const list = known.length === 0 ? 'none are configured' : `configured: ${known.join(', ')}`;
    super('UNKNOWN_PIPELINE', `unknown pipeline '${name}' (${list})`, {
      hint: 'check --pipeline and the pipelines in sluice.config.ts',
    });
  }
}

/**
 * The pipeline's source table does not fit what the configuration says (missing, a key that is not
 * unique or is nullable, a column that does not exist). Fixed in the table or the config, not by waiting.
 */
export class SourceError extends SluiceError {}

/** The spool folder cannot be used (a file where a folder should be, no permission, disk full). */
export class SpoolError extends SluiceError {}

/** The database cannot be reached, or refused us. `retriable` tells a passing outage from bad credentials. */
export class DatabaseError extends SluiceError {
  /** An outage is "unavailable" (3) whatever its code; a statement the database refused is a failure (1). */
  override get exitCode(): number {
    return this.retriable ? EXIT.unavailable : super.exitCode;
  }
}

export class MigrationError extends SluiceError {}

export class KafkaError extends SluiceError {}

/** Thrown by a stage handler to say: retrying this task cannot help, quarantine it now. */
export class NonRetriableError extends SluiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('NON_RETRIABLE', message, { retriable: false, cause: options.cause });
  }
}

const BUG_TYPES = [TypeError, ReferenceError, SyntaxError, RangeError, EvalError, URIError];

/** True for errors that come from a mistake in code rather than from the world. */
export function isBug(err: unknown): boolean {
  return BUG_TYPES.some((t) => err instanceof t);
}

/** Whether trying again could succeed. Unknown errors count as retriable (network blips), bugs never. */
export function isRetriable(err: unknown): boolean {
  if (isBug(err)) return false;
  if (err instanceof SluiceError) return err.retriable;
  if (err !== null && typeof err === 'object' && 'retriable' in err) {
    return Boolean(err.retriable);
  }
  return true;
}

/** Anything thrown (strings, objects, undefined) as an Error, so it can be logged under `err`. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (typeof thrown === 'string') return new Error(thrown);
  try {
    return new Error(`non-error thrown: ${JSON.stringify(thrown)}`);
  } catch {
    return new Error(`non-error thrown: ${String(thrown)}`);
  }
}
