import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import {
  coerceError,
  ConfigError,
  DatabaseError,
  isRetriable,
  KafkaError,
  MigrationError,
  NonRetriableError,
  SluiceError,
  SourceError,
} from '../../src/core/errors.js';
import { createLogger, redactUrl } from '../../src/core/logger.js';
import { Shutdown } from '../../src/core/shutdown.js';

describe('logging', () => {
  it('redacts passwords, URLs and SASL settings wherever they appear in fields', () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
    const log = createLogger({ level: 'info', pretty: false, isTTY: false, destination: sink });
    log.info(
      {
        password: 'p1',
        url: 'mysql://u:p2@h/db',
        kafka: { sasl: { mechanism: 'plain', username: 'u', password: 'p3' } },
        database: { url: 'mysql://u:p4@h/db' },
      },
      'connecting',
    );
    const out = lines.join('');
    for (const secret of ['p1', 'p2', 'p3', 'p4']) assert.doesNotMatch(out, new RegExp(secret));
    assert.match(out, /"msg":"connecting"/);
    assert.match(out, /\[redacted\]/);
    assert.match(out, /"url":"mysql:\/\/u:\*\*\*@h\/db"/, 'a URL keeps its host and database; only the password goes');
  });

  it('redactUrl keeps the server visible and hides the password', () => {
    assert.equal(redactUrl('mysql://root:hunter2@db.example:3306/sluice'), 'mysql://root:***@db.example:3306/sluice');
    assert.equal(redactUrl('mysql://root@db:3306/sluice'), 'mysql://root@db:3306/sluice');
  });
});

describe('errors', () => {
  it('never retries a bug, retries what says so, and retries unknown errors', () => {
    assert.equal(isRetriable(new TypeError('x is undefined')), false);
    assert.equal(isRetriable(new NonRetriableError('bad input')), false);
    assert.equal(isRetriable(new SluiceError('OVERLOAD', 'flaky', { retriable: true })), true);
    assert.equal(
      isRetriable(new SluiceError('DB_CONNECTION_LOST', 'gone')),
      true,
      "a code's own default when the thrower does not say",
    );
    assert.equal(isRetriable(new SluiceError('DB_AUTH', 'refused')), false);
    assert.equal(isRetriable(Object.assign(new Error('kafkajs'), { retriable: false })), false);
    assert.equal(isRetriable(new Error('connection reset by peer')), true);
  });

  it('derives the exit status from the error code (and a database outage is "unavailable")', () => {
    assert.equal(new ConfigError(['x: y']).exitCode, 2);
    assert.equal(new SourceError('SOURCE_GONE', 'gone').exitCode, 2);
    assert.equal(new MigrationError('MIGRATIONS_PENDING', 'pending').exitCode, 4);
    assert.equal(new KafkaError('KAFKA_UNREACHABLE', 'down').exitCode, 3);
    assert.equal(new DatabaseError('DB_ERROR', 'refused statement').exitCode, 1);
    assert.equal(new DatabaseError('DB_ERROR', 'lost mid-statement', { retriable: true }).exitCode, 3);
    assert.equal(new NonRetriableError('bad input').exitCode, 1);
  });

  it('coerces anything thrown into an Error', () => {
    assert.equal(coerceError('boom').message, 'boom');
    assert.match(coerceError({ a: 1 }).message, /\{"a":1\}/);
    assert.match(coerceError(undefined).message, /non-error thrown/);
  });
});

describe('shutdown', () => {
  it('drains on the first request and forces on the second', () => {
    const s = new Shutdown();
    assert.equal(s.state, 'running');
    assert.equal(s.requestStop('SIGINT'), 'draining');
    assert.equal(s.stopping.aborted, true);
    assert.equal(s.signal.aborted, false, 'handlers keep running while draining');
    assert.equal(s.requestStop('SIGINT'), 'forced');
    assert.equal(s.signal.aborted, true);
    assert.equal(s.reason, 'SIGINT');
  });

  it('tells a component that subscribes after the signal came (a stop during start-up is not lost)', async () => {
    const s = new Shutdown();
    const seen: string[] = [];
    s.onStop(() => seen.push('early stop'));
    s.requestStop('SIGTERM');
    s.onStop(() => seen.push('late stop'));
    s.onForce(() => seen.push('force'));
    s.requestStop('SIGTERM');
    s.onForce(() => seen.push('late force'));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen.sort(), ['early stop', 'force', 'late force', 'late stop']);
  });
});
