// Progress of a produce run: on a terminal, a one-line bar with count, rate and ETA (cli-progress);
// otherwise a structured log line every few seconds (grep-able: msg "produce progress").

import { SingleBar } from 'cli-progress';
import type { Logger } from '../core/logger.js';

export interface ProgressSink {
  /** True when the sink is a terminal that understands \r. */
  tty: boolean;
  write(text: string): void;
  /** Terminal width; default 100. */
  columns?: number;
}

const WITH_TOTAL = '[{bar}] {percentage}% {value}/{total} {speed}/s ETA {eta}s';
const WITHOUT_TOTAL = '{value} published {speed}/s';

export class Progress {
  #done = 0;
  readonly #started = performance.now();
  #timer: NodeJS.Timeout | undefined;
  readonly #total: number | null;
  readonly #bar: SingleBar | null = null;
  readonly #log: Logger;

  constructor(opts: { total: number | null; sink?: ProgressSink; log: Logger; intervalMs: number }) {
    this.#total = opts.total;
    this.#log = opts.log;
    const sink = opts.sink;
    if (sink?.tty === true) {
      // cli-progress draws through readline on any object with write(); the sink is the CLI's stderr.
      const stream = {
        isTTY: true,
        columns: sink.columns ?? 100,
        write: (s: string) => sink.write(s),
      } as unknown as NodeJS.WritableStream;
      this.#bar = new SingleBar({
        stream,
        format: opts.total === null ? WITHOUT_TOTAL : WITH_TOTAL,
        fps: 4,
        hideCursor: false,
        barsize: 30,
        etaBuffer: 50,
      });
      this.#bar.start(opts.total ?? 0, 0, { speed: 0 });
    } else {
      this.#timer = setInterval(() => this.#logLine(), opts.intervalMs);
      this.#timer.unref();
    }
  }

  add(n: number): void {
    this.#done += n;
    this.#bar?.update(this.#done, { speed: Math.round(this.rate).toLocaleString('en') });
  }

  get rate(): number {
    const s = (performance.now() - this.#started) / 1000;
    return s > 0 ? this.#done / s : 0;
  }

  #logLine(): void {
    const eta = this.#total === null || this.rate === 0 ? null : Math.max(0, (this.#total - this.#done) / this.rate);
    this.#log.info(
      {
        published: this.#done,
        total: this.#total,
        rate: Math.round(this.rate),
        etaSeconds: eta === null ? null : Math.ceil(eta),
      },
      'produce progress',
    );
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#bar?.stop();
  }
}
