// Texts written to bounded database columns are cut by their UTF-8 bytes, not by characters: a column of
// 65,535 bytes holds 16,383 characters of a four-byte script, and a text cut at 60,000 characters was
// refused ("Data too long"), which once made a task loop forever.

/** `text` cut to at most `maxBytes` bytes of UTF-8, never inside a character; an ellipsis marks a cut. */
export function cutBytes(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  const mark = '…';
  const room = Math.max(0, maxBytes - Buffer.byteLength(mark));
  const buf = Buffer.from(text).subarray(0, room);
  // Back off to a character boundary: continuation bytes are 10xxxxxx.
  let end = buf.length;
  if (end > 0 && (buf[end - 1]! & 0x80) !== 0) {
    let start = end - 1;
    while (start > 0 && (buf[start]! & 0xc0) === 0x80) start--;
    const lead = buf[start]!;
    const len = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (start + len > end) end = start;
  }
  return buf.subarray(0, end).toString('utf8') + (room > 0 ? mark : '');
}

/** Byte bounds of sluice's own text columns (prisma/schema.prisma), in one place. */
export const COLUMN_BYTES = {
  /** TEXT */
  text: 65_535,
  /** VARCHAR(128) CHARACTER SET utf8mb4 counts characters; 128 single bytes is the safe cut. */
  errorClass: 128,
  workerId: 128,
  reason: 64,
  spoolFile: 255,
} as const;

/** How deep a JSON value nests (arrays and objects); 0 for a scalar. Reads the serialised text. */
export function jsonDepth(json: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (inString) {
      if (c === 92)
        i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) max = Math.max(max, ++depth);
    else if (c === 93 || c === 125) depth--;
  }
  return max;
}

/** Any value as text for a message: objects as JSON (never '[object Object]'), the rest as String() gives it. */
export function asText(v: unknown): string {
  if (v !== null && typeof v === 'object') {
    try {
      return JSON.stringify(v);
    } catch {
      return Object.prototype.toString.call(v);
    }
  }
  if (typeof v === 'symbol') return v.toString();
  if (typeof v === 'function') return `[function ${v.name}]`;
  return `${v as string | number | boolean | bigint | null | undefined}`;
}
