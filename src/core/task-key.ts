// A task's key, as sluice carries it everywhere: its canonical text. The database produces it from the
// source row (db/key-sql.ts), the envelope carries it (a number when it is a safe integer), the ledger
// stores its UTF-8 bytes, and every lookup compares those bytes. Nothing else ever derives a key's text.

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
