// The adaptive limit of a resource with `concurrency: 'auto'`, computed once per window (about a second) by
// one elected process from every process's samples. As in Gradient2, Envoy's and brpc's limiters:
//   - latency against the no-load latency: gradient = clamp(TOLERANCE x baseline / latency, 0.5, 1); at 1
//     the limit grows by sqrt(limit) (a short queue keeps the service busy), below it shrinks to
//     limit x gradient: the queue settles where latency is about TOLERANCE x the no-load latency;
//   - overload signals (resets, timeouts, 429/503, OverloadError) cut it multiplicatively;
//   - slow start from `min`: the limit doubles while latency stays at its baseline and nothing overloads;
//   - the baseline is the lowest latency seen, and every PROBE_EVERY_MS the limit is halved for one window
//     to measure it again (so it cannot stay stale, nor drift upward with the load: the known failure).
// It only grows while the fleet asks for more than the limit (an idle resource keeps its limit).

export const TOLERANCE = 1.25;
export const DECREASE = 0.7;
export const PROBE_EVERY_MS = 30_000;
/** Overloads in a window below this share of its calls are noise (a random reset), not overload. */
export const OVERLOAD_SHARE = 0.01;

export interface ControllerState {
  limit: number;
  baselineMs: number | null;
  slowStart: boolean;
  nextProbeAt: number;
  /** While probing: the limit to go back to. */
  probeFrom: number | null;
}

export interface Window {
  calls: number;
  ok: number;
  overloads: number;
  /** Mean latency of the window's successful calls. */
  latencyMs: number | null;
  /** Calls in flight and waiting, fleet-wide, at the end of the window. */
  demand: number;
}

export function initialState(min: number, now: number): ControllerState {
  return { limit: min, baselineMs: null, slowStart: true, nextProbeAt: now + PROBE_EVERY_MS, probeFrom: null };
}

export function nextLimit(
  s: ControllerState,
  w: Window,
  bounds: { min: number; max: number },
  now: number,
): ControllerState {
  const clamp = (n: number): number => Math.min(bounds.max, Math.max(bounds.min, n));
  if (w.calls === 0) return s;
  if (w.overloads > Math.max(0, w.calls * OVERLOAD_SHARE)) {
    const from = s.probeFrom ?? s.limit;
    return { ...s, limit: clamp(Math.floor(from * DECREASE)), slowStart: false, probeFrom: null };
  }
  if (w.latencyMs === null) return s;
  if (s.probeFrom !== null) {
    // The probe window ran at half the limit: its latency is the no-load latency now.
    return { ...s, baselineMs: w.latencyMs, limit: s.probeFrom, probeFrom: null, nextProbeAt: now + PROBE_EVERY_MS };
  }
  const baselineMs = s.baselineMs === null ? w.latencyMs : Math.min(s.baselineMs, w.latencyMs);
  if (now >= s.nextProbeAt) {
    // At the least limit there is no lighter load to probe with: what the service does now is its baseline.
    if (s.limit <= bounds.min) return { ...s, baselineMs: w.latencyMs, nextProbeAt: now + PROBE_EVERY_MS };
    return { ...s, baselineMs, probeFrom: s.limit, limit: clamp(Math.floor(s.limit / 2)) };
  }
  const gradient = Math.min(1, Math.max(0.5, (TOLERANCE * baselineMs) / w.latencyMs));
  const busy = w.demand >= s.limit;
  if (s.slowStart && gradient >= 1) return { ...s, baselineMs, limit: busy ? clamp(s.limit * 2) : s.limit };
  // Below the tolerance it grows by sqrt(limit) (a short queue keeps the service busy); above, it shrinks in
  // proportion: the queue settles where latency is about TOLERANCE x the no-load latency.
  const next = gradient < 1 ? s.limit * gradient : busy ? s.limit + Math.sqrt(s.limit) : s.limit;
  return { ...s, baselineMs, slowStart: false, limit: clamp(next) };
}
