// A live panel at the bottom of a terminal for `demo`, `work`, `run` and `fetch`: a few lines (per stage done,
// rate, in flight, retries; spool depth; the service's resets in the demo) redrawn in place, with every log
// record printed above it as one line. It is the logger's destination in a terminal; outside one, logs stay
// JSON lines as they are.
//
// States: live -> closed (the panel is drawn a last time and left on screen).

import type { DestinationStream } from 'pino';
import { asText } from '../core/text.js';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
const COLOURS: Record<number, string> = { 40: '\x1b[33m', 50: '\x1b[31m', 60: '\x1b[31m' };
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'component', 'command']);

export interface PanelOutput {
  write(text: string): void;
  columns?: number;
}

/** One log record (a JSON line) as one line: time, level, component, message, then its fields as key=value. */
export function formatRecord(json: string, columns = 160): string {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.replace(/\s+/g, ' ').trim();
  }
  const level = Number(r.level);
  const time = new Date(Number(r.time)).toISOString().slice(11, 23);
  const fields = Object.entries(r)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => {
      const shown = k === 'err' && v !== null && typeof v === 'object' ? (v as { message?: unknown }).message : v;
      return `${k}=${JSON.stringify(shown)}`;
    })
    .join(' ');
  const head =
    `${time} ${LEVELS[level] ?? String(level)} ` +
    `${r.component === undefined ? '' : `[${asText(r.component)}] `}` +
    `${asText(r.msg ?? '')}`;
  const line = `${head}${fields === '' ? '' : `  ${fields}`}`.replace(/\s*\n\s*/g, ' ');
  const cut = line.length > columns ? `${line.slice(0, columns - 1)}…` : line;
  return COLOURS[level] === undefined ? cut : `${COLOURS[level]}${cut}\x1b[0m`;
}

export class TerminalPanel implements DestinationStream {
  state: 'live' | 'closed' = 'live';
  readonly #out: PanelOutput;
  #lines: string[] = [];
  #drawn = 0;
  #dirty = false;
  readonly #timer: NodeJS.Timeout;

  constructor(out: PanelOutput, refreshMs = 250) {
    this.#out = out;
    this.#timer = setInterval(() => this.#flush(), refreshMs);
    this.#timer.unref();
  }

  /** pino writes each record here: it goes above the panel, which is drawn again below it. */
  write(chunk: string): void {
    const records = chunk.split('\n').filter((l) => l.trim() !== '');
    if (this.state === 'closed') {
      for (const r of records) this.#out.write(`${formatRecord(r, this.#columns())}\n`);
      return;
    }
    this.#out.write(
      this.#clear() + records.map((r) => `${formatRecord(r, this.#columns())}\n`).join('') + this.#draw(),
    );
  }

  /** New panel content; drawn at the next refresh. */
  setLines(lines: readonly string[]): void {
    this.#lines = [...lines];
    this.#dirty = true;
  }

  /** Draws the panel a last time and leaves it on screen; later records print as plain lines. */
  close(): void {
    if (this.state === 'closed') return;
    clearInterval(this.#timer);
    this.#flush(true);
    this.state = 'closed';
    this.#drawn = 0;
  }

  #columns(): number {
    // A terminal that reports no size (0, as some pseudo-terminals do) is taken as 120 wide.
    const c = this.#out.columns;
    return Math.max(40, (c === undefined || c <= 0 ? 120 : c) - 1);
  }

  #flush(force = false): void {
    if (!this.#dirty && !force) return;
    this.#dirty = false;
    this.#out.write(this.#clear() + this.#draw());
  }

  /** Moves to the panel's first line and clears from there down. */
  #clear(): string {
    const up = this.#drawn > 0 ? `\x1b[${this.#drawn}A` : '';
    this.#drawn = 0;
    return `${up}\r\x1b[J`;
  }

  #draw(): string {
    if (this.#lines.length === 0) return '';
    const cols = this.#columns();
    const rule = '─'.repeat(Math.min(cols, 80));
    const lines = [rule, ...this.#lines.map((l) => (l.length > cols ? `${l.slice(0, cols - 1)}…` : l))];
    this.#drawn = lines.length;
    return lines.map((l) => `${l}\n`).join('');
  }
}
