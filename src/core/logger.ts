// Logging: one root pino logger, made in cli.ts; every component takes a `child({ component })` of it, and
// `stage` names a pipeline's stage only.
// Messages are fixed strings with fields beside them (grep-able), errors go under `err`, and anything that
// could hold a secret is redacted. Logs go to stderr so stdout stays clean for command output (--json).

import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

type Bindings = Record<string, unknown>;

const REDACT = [
  'password',
  '*.password',
  '*.*.password',
  'sasl',
  '*.sasl',
  'url',
  '*.url',
  'databaseUrl',
  '*.databaseUrl',
  'authorization',
  '*.authorization',
];

/** URLs keep their host and database visible, only a password inside them is hidden; anything else goes. */
function censor(value: unknown, path: string[]): unknown {
  const field = path[path.length - 1];
  if ((field === 'url' || field === 'databaseUrl') && typeof value === 'string') return redactUrl(value);
  return '[redacted]';
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** What the logger needs of the configuration's `log` section (config/ checks that it fits). */
export interface LoggerOptions {
  level: LogLevel;
  pretty: boolean | 'auto';
  /** Whether stderr is a terminal (decides 'auto' pretty printing). */
  isTTY: boolean;
  /** Where JSON lines go instead of stderr (tests). */
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  const pretty = opts.pretty === 'auto' ? opts.isTTY : opts.pretty;
  const base = {
    level: opts.level,
    base: { pid: process.pid },
    redact: { paths: REDACT, censor },
    serializers: { err: pino.stdSerializers.err },
    hooks: { logMethod: withoutBoundKeys },
  };
  if (opts.destination !== undefined) return pino(base, opts.destination);
  if (pretty) {
    return pino({
      ...base,
      transport: {
        target: 'pino-pretty',
        options: { destination: 2, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' },
      },
    });
  }
  // Synchronous writes: a CLI that exits right after an error must not lose its last line.
  return pino(base, pino.destination({ fd: 2, sync: true }));
}

// pino writes a child's bindings and then the call's fields as they come, so a key bound twice appears twice in
// one JSON line (and a parser keeps only one of them). Two guards: childLogger remembers what each child binds
// and, when a new binding names a key already bound, derives the child from the logger its ancestors came from,
// with the bindings merged (a nested component is named once, 'worker.resources'); and a call's field named like
// a binding is dropped when it says the same, or renamed `<key>2` when not. A parent not made by childLogger (a
// library user's) is taken as it is: keys it bound itself are not known here.
const origins = new WeakMap<Logger, { base: Logger; bindings: Bindings }>();

/** `parent.child(bindings)`, with each key written once: a component inside another is 'outer.inner'. */
export function childLogger(parent: Logger, bindings: Bindings): Logger {
  const origin = origins.get(parent) ?? { base: parent, bindings: {} };
  const merged: Bindings = { ...origin.bindings };
  let overlaps = false;
  for (const [k, v] of Object.entries(bindings)) {
    const outer = merged[k];
    if (Object.hasOwn(merged, k)) overlaps = true;
    merged[k] = k === 'component' && typeof outer === 'string' && outer !== v ? `${outer}.${String(v)}` : v;
  }
  // Without an overlap a plain child is the same record and cheaper: pino serialises only the new bindings.
  const child = overlaps ? origin.base.child(merged) : parent.child(bindings);
  origins.set(child, { base: origin.base, bindings: merged });
  return child;
}

function withoutBoundKeys(this: Logger, args: Parameters<Logger['info']>, method: (...a: unknown[]) => void): void {
  const [first] = args as unknown[];
  if (first !== null && typeof first === 'object' && !(first instanceof Error)) {
    const bound: Bindings = { pid: process.pid, ...(origins.get(this)?.bindings ?? this.bindings()) };
    const fields = first as Bindings;
    if (Object.keys(fields).some((k) => Object.hasOwn(bound, k))) {
      const clean: Bindings = {};
      for (const [k, v] of Object.entries(fields)) {
        if (!Object.hasOwn(bound, k)) clean[k] = v;
        else if (bound[k] !== v) clean[`${k}2`] = v;
      }
      (args as unknown[])[0] = clean;
    }
  }
  method.apply(this, args as unknown[]);
}

/** A logger that drops everything (tests, library use without a logger). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** mysql://user:secret@host/db -> mysql://user:***@host/db, for messages that must name a server. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
