// Cleanup that always finishes: every step runs even when an earlier one throws, and a failure is logged,
// never rethrown, so a close() called on the way out of an error cannot replace that error or leave a
// timer or a connection behind.

import type { Logger } from './logger.js';

export type CloseStep = [what: string, step: () => unknown];

export async function closeAll(log: Logger, steps: readonly CloseStep[]): Promise<void> {
  for (const [what, step] of steps) {
    try {
      await step();
    } catch (err) {
      log.warn({ err, what }, 'close step failed');
    }
  }
}
