// Every log record is one JSON object with each key once: a nested component is named once ('worker.resources'),
// and a call's field named like a binding does not repeat it. JSON.parse keeps the last of two equal keys
// silently, so these records are read by a parser that refuses duplicates.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { childLogger, createLogger, type Logger } from '../../src/core/logger.js';
import { ROOT } from '../helpers/fixtures.js';

/** JSON.parse that throws on an object with a key twice (records are flat enough for this small reader). */
export function parseStrict(text: string): unknown {
  let i = 0;
  const ws = (): void => {
    while (/\s/.test(text[i] ?? '')) i++;
  };
  const value = (): unknown => {
    ws();
    if (text[i] === '{') {
      i++;
      const out: Record<string, unknown> = {};
      ws();
      if (text[i] === '}') return (i++, out);
      for (;;) {
        ws();
        const key = str();
        if (Object.hasOwn(out, key)) throw new Error(`duplicate key ${JSON.stringify(key)} in ${text}`);
        ws();
        assert.equal(text[i++], ':');
        out[key] = value();
        ws();
        if (text[i++] === '}') return out;
      }
    }
    if (text[i] === '[') {
      i++;
      const out: unknown[] = [];
      ws();
      if (text[i] === ']') return (i++, out);
      for (;;) {
        out.push(value());
        ws();
        if (text[i++] === ']') return out;
      }
    }
    if (text[i] === '"') return str();
    const m = /^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i));
    assert.ok(m, `not JSON at ${i}: ${text}`);
    i += m[0].length;
    return JSON.parse(m[0]);
  };
  const str = (): string => {
    const start = i;
    assert.equal(text[i++], '"');
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  return value();
}

function recording(): { log: Logger; records: () => Array<Record<string, unknown>> } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const log = createLogger({ level: 'info', pretty: false, isTTY: false, destination });
  return { log, records: () => lines.map((l) => parseStrict(l) as Record<string, unknown>) };
}

describe('log records', () => {
  it('name a component inside another once, as outer.inner, keeping the outer bindings', () => {
    const { log, records } = recording();
    const command = childLogger(log, { command: 'run' });
    const worker = childLogger(command, { component: 'worker', pipeline: 'p', workerId: 'w1' });
    childLogger(worker, { component: 'resources' }).info({ resource: 'gpu' }, 'resource share renewed');
    childLogger(childLogger(log, { component: 'dashboard' }), { component: 'producer', pipeline: 'p' }).info(
      'produce started',
    );
    const [a, b] = records();
    assert.equal(a!.component, 'worker.resources');
    assert.deepEqual([a!.command, a!.pipeline, a!.workerId, a!.resource], ['run', 'p', 'w1', 'gpu']);
    assert.equal(b!.component, 'dashboard.producer');
  });

  it("drop a call's field that repeats a binding, and rename one that says otherwise", () => {
    const { log, records } = recording();
    const producer = childLogger(log, { component: 'producer', pipeline: 'p' });
    producer.info({ pipeline: 'p', published: 3 }, 'page published');
    producer.warn({ pipeline: 'q', pid: 1 }, 'message of another pipeline');
    const [same, other] = records();
    assert.deepEqual([same!.pipeline, same!.published, 'pipeline2' in same!], ['p', 3, false]);
    assert.deepEqual([other!.pipeline, other!.pipeline2, other!.pid2], ['p', 'q', 1]);
  });

  it('are read by a parser that refuses a key twice (the check above can fail)', () => {
    assert.throws(
      () => parseStrict('{"component":"worker","level":30,"component":"resources"}'),
      /duplicate key "component"/,
    );
    assert.deepEqual(parseStrict('{"a":[1,{"b":"x\\"y"}],"c":null}'), { a: [1, { b: 'x"y' }], c: null });
  });

  it('come from childLogger only: no other file of src/ calls .child()', () => {
    const files = (dir: string): string[] =>
      readdirSync(dir).flatMap((f) => {
        const p = join(dir, f);
        return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
      });
    const callers = files(join(ROOT, 'src'))
      .filter((f) => !f.endsWith(join('core', 'logger.ts')) && /\.child\(/.test(readFileSync(f, 'utf8')))
      .map((f) => relative(ROOT, f));
    assert.deepEqual(callers, []);
  });
});
