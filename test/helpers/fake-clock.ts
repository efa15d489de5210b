// A clock for unit tests: sleeps return at once (or when the signal aborts) and are recorded, so a test
// asserts the delays a policy chose without waiting them out.
import type { Clock } from '../../src/core/retry.js';

export interface FakeClock extends Clock {
  readonly sleeps: number[];
  advance(ms: number): void;
}

export function fakeClock(): FakeClock {
  let now = 0;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    advance: (ms) => {
      now += ms;
    },
    sleep: async (ms, signal) => {
      if (signal?.aborted === true) throw signal.reason;
      sleeps.push(ms);
      now += ms;
    },
  };
}
