// How long a resource share's lease must be. A call starts only if it would end (its stage timeout) before
// the lease does, judged on the holder's clock less a safety margin, and renewals come every RENEW_MS: a
// lease that leaves no room for the longest timeout starts no call at all, so the default lease counts the
// margin in: "timeout + 3 s" alone, less the margin, would leave none for a 60 s timeout.

export const RENEW_MS = 500;

/** What a lease is trusted for less than its length: clocks run at slightly different rates, timers fire late. */
export function leaseMargin(leaseMs: number): number {
  return Math.max(250, Math.round(leaseMs * 0.1));
}

/** Room a lease must leave beyond the timeout: a renewal interval, and slack for a slow renewal. */
const HEADROOM_MS = 3000;

/** The shortest lease that lets a call of `timeoutMs` start right after a renewal, with headroom. */
export function leaseForTimeout(timeoutMs: number): number {
  const need = timeoutMs + HEADROOM_MS;
  let lease = Math.max(need + 250, Math.ceil(need / 0.9), 2 * RENEW_MS + 1000);
  while (lease - leaseMargin(lease) < need) lease++;
  return lease;
}

/** Whether a lease of `leaseMs` lets calls of `timeoutMs` start at all (one renewal interval of room at least). */
export function leaseFits(leaseMs: number, timeoutMs: number): boolean {
  return leaseMs - leaseMargin(leaseMs) >= timeoutMs + 2 * RENEW_MS;
}
