// A timer as a promise that a signal can cut short (it then rejects with the signal's reason).

import { coerceError } from './errors.js';

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) return reject(coerceError(signal.reason));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(coerceError(signal!.reason));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
