// Typed errors. Every error sluice raises on purpose is a SluiceError with a stable `code`, a `retriable`
// flag and, for the errors people hit first, a `hint` naming the command that fixes it.
// Bugs (TypeError, ReferenceError, ...) are never retried: retrying a bug only hides it.

export interface SluiceErrorOptions {
  retriable?: boolean;
  hint?: string;
  cause?: unknown;
}

export class SluiceError extends Error {
  readonly code: string;
  readonly retriable: boolean;
  readonly hint: string | undefined;

  constructor(code: string, message: string, options: SluiceErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? false;
    this.hint = options.hint;
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
export class DatabaseError extends SluiceError {}

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
    return Boolean((err as { retriable: unknown }).retriable);
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
