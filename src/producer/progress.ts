// Progress of a produce run: a one-line bar with count, rate and ETA on a terminal, otherwise a
// structured log line every few seconds (grep-able: msg "produce progress").

import type { Logger } from '../core/logger.js';

export interface ProgressSink {
  /** True when the sink is a terminal that understands \r. */
  tty: boolean;
  write(text: string): void;
}

export class Progress {
  #done = 0;
  readonly #started = performance.now();
  #timer: NodeJS.Timeout | undefined;
  readonly #total: number | null;
  readonly #sink: ProgressSink | undefined;
  readonly #log: Logger;

  constructor(opts: { total: number | null; sink?: ProgressSink; log: Logger; intervalMs: number }) {
    this.#total = opts.total;
    this.#sink = opts.sink;
    this.#log = opts.log;
    const tty = this.#sink?.tty === true;
    this.#timer = setInterval(() => (tty ? this.#render() : this.#logLine()), tty ? 250 : opts.intervalMs);
    this.#timer.unref();
  }

  add(n: number): void {
    this.#done += n;
  }

  get rate(): number {
    const s = (performance.now() - this.#started) / 1000;
    return s > 0 ? this.#done / s : 0;
  }

  #eta(): number | null {
    if (this.#total === null || this.rate === 0) return null;
    return Math.max(0, (this.#total - this.#done) / this.rate);
  }

  #render(): void {
    const total = this.#total;
    const width = 30;
    const frac = total === null || total === 0 ? 0 : Math.min(1, this.#done / total);
    const bar = total === null ? '' : `[${'#'.repeat(Math.round(frac * width)).padEnd(width, '-')}] ${(frac * 100).toFixed(0).padStart(3)}% `;
    const eta = this.#eta();
    const count = total === null ? this.#done.toLocaleString('en') : `${this.#done.toLocaleString('en')}/${total.toLocaleString('en')}`;
    this.#sink?.write(`\r${bar}${count} ${Math.round(this.rate).toLocaleString('en')}/s${eta === null ? '' : ` ETA ${Math.ceil(eta)}s`}   `);
  }

  #logLine(): void {
    const eta = this.#eta();
    this.#log.info({ published: this.#done, total: this.#total, rate: Math.round(this.rate), etaSeconds: eta === null ? null : Math.ceil(eta) }, 'produce progress');
  }

  stop(): void {
    clearInterval(this.#timer);
    if (this.#sink?.tty === true) {
      this.#render();
      this.#sink.write('\n');
    }
  }
}
