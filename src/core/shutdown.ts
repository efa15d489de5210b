// Graceful shutdown, in the order every component follows:
//   running --(first signal)--> draining: stop intake, finish or return in-flight work, commit, disconnect
//   draining --(second signal or drain deadline)--> forced: `signal` aborts, handlers must give up at once
// cli.ts wires OS signals to `requestStop`; components watch `stopping` (stop intake) and `signal` (abort).

export type ShutdownState = 'running' | 'draining' | 'forced';

export class Shutdown {
  #state: ShutdownState = 'running';
  readonly #drain = new AbortController();
  readonly #force = new AbortController();
  #reason = '';

  /** Fires on the first stop request: stop taking new work. */
  get stopping(): AbortSignal {
    return this.#drain.signal;
  }

  /** Fires when the stop is forced: abort whatever is still running. Passed to every handler. */
  get signal(): AbortSignal {
    return this.#force.signal;
  }

  get state(): ShutdownState {
    return this.#state;
  }

  get reason(): string {
    return this.#reason;
  }

  /** First call drains, second forces. Returns the new state. */
  requestStop(reason: string): ShutdownState {
    if (this.#state === 'running') {
      this.#state = 'draining';
      this.#reason = reason;
      this.#drain.abort(new Error(`stopping: ${reason}`));
    } else if (this.#state === 'draining') {
      this.force(reason);
    }
    return this.#state;
  }

  /**
   * Runs `fn` on the first stop request, at once if it already came: a component that finished starting
   * after a signal arrived must still see it (a listener added to a fired AbortSignal never runs).
   */
  onStop(fn: () => void): void {
    whenAborted(this.#drain.signal, fn);
  }

  /** Runs `fn` when the stop is forced, at once if it already was. */
  onForce(fn: () => void): void {
    whenAborted(this.#force.signal, fn);
  }

  force(reason: string): void {
    if (this.#state === 'forced') return;
    if (this.#state === 'running') this.#drain.abort(new Error(`stopping: ${reason}`));
    this.#state = 'forced';
    this.#reason ||= reason;
    this.#force.abort(new Error(`forced stop: ${reason}`));
  }
}

function whenAborted(signal: AbortSignal, fn: () => void): void {
  if (signal.aborted) queueMicrotask(fn);
  else signal.addEventListener('abort', fn, { once: true });
}
