// Table and column names come from configuration and end up inside SQL text, where placeholders cannot
// be used. They are validated against a strict pattern before any SQL is built, then quoted anyway.

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]{0,63}$/;

export const IDENTIFIER_RULE = 'letters, digits, _ and $, not starting with a digit, at most 64 characters';

export function isIdentifier(name: unknown): name is string {
  return typeof name === 'string' && IDENTIFIER.test(name);
}

/** `table` or `database.table`. */
export function isQualifiedIdentifier(name: unknown): name is string {
  if (typeof name !== 'string') return false;
  const parts = name.split('.');
  return parts.length <= 2 && parts.every((p) => IDENTIFIER.test(p));
}

/** Backtick-quotes a validated identifier (or `db.table`). Throws on anything unvalidated. */
export function quoteIdentifier(name: string): string {
  if (!isQualifiedIdentifier(name)) {
    throw new TypeError(`not a valid SQL identifier: ${JSON.stringify(name)}`);
  }
  return name
    .split('.')
    .map((p) => `\`${p}\``)
    .join('.');
}
