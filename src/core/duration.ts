// Durations on the command line: 90s, 30m, 1h, 2d, 1500ms, or a bare number of milliseconds.

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (m === null) return null;
  return Math.round(Number(m[1]) * UNITS[m[2] ?? 'ms']!);
}
