// A long expected message as a pattern in parts, each a regex literal (so each keeps its own escapes), matched as
// one: seq(/^a \(b\) /, /c$/) is /^a \(b\) c$/. Keeps the lines of a test within 120 characters.
export function seq(...parts: RegExp[]): RegExp {
  return new RegExp(parts.map((p) => p.source).join(''));
}
