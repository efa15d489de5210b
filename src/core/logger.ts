// Logging: one root pino logger, made in cli.ts; every component takes a `child({ component })` of it, and
// `stage` names a pipeline's stage only.
// Messages are fixed strings with fields beside them (grep-able), errors go under `err`, and anything that
// could hold a secret is redacted. Logs go to stderr so stdout stays clean for command output (--json).

import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogConfig } from './config.js';

export type { Logger };

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

export interface LoggerOptions extends Omit<LogConfig, 'panel'> {
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
