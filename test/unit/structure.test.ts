// The shape the code promises (issue 13): no function in src/ over 100 lines; one retry loop, in core/retry.ts; no
// hand-made timer promises beside core/sleep.ts; the configuration table (docs/configuration.md) made from the
// schema; a produce progress bar drawn by cli-progress.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { configTable, TABLE_END, TABLE_START } from '../../src/config/docs.js';
import { silentLogger } from '../../src/core/logger.js';
import { Progress } from '../../src/producer/progress.js';
import { ROOT } from '../helpers/fixtures.js';

function sources(dir = join(ROOT, 'src'), pattern = /\.ts$/): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (f === 'results' || f === 'node_modules') return [];
    return statSync(p).isDirectory() ? sources(p, pattern) : pattern.test(p) ? [p] : [];
  });
}

function functionLengths(file: string): Array<{ name: string; lines: number }> {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: Array<{ name: string; lines: number }> = [];
  const visit = (n: ts.Node): void => {
    if (ts.isFunctionLike(n) && (n as ts.FunctionLikeDeclaration).body !== undefined) {
      const first = sf.getLineAndCharacterOfPosition(n.getStart()).line;
      const last = sf.getLineAndCharacterOfPosition(n.end).line;
      const name = (n as ts.FunctionLikeDeclaration).name?.getText() ?? '<anonymous>';
      out.push({ name: `${relative(ROOT, file)}:${first + 1} ${name}`, lines: last - first + 1 });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

describe('code structure', () => {
  it('has no function in src/ longer than 100 lines', () => {
    const long = sources()
      .flatMap(functionLengths)
      .filter((f) => f.lines > 100);
    assert.deepEqual(long, []);
  });

  it('has no line over 120 characters in src/, test/, bench/ or scripts/ (Prettier wraps code, not words)', () => {
    const files = ['src', 'test', 'bench', 'scripts'].flatMap((d) => sources(join(ROOT, d), /\.(ts|mjs|js|sh)$/));
    const long = files.flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .flatMap((l, i) => (l.length > 120 ? [`${relative(ROOT, f)}:${i + 1} (${l.length})`] : [])),
    );
    assert.deepEqual(long, []);
  });

  it('retries in one place (core/retry.ts) and makes timer promises in one place (core/sleep.ts)', () => {
    for (const file of sources()) {
      const text = readFileSync(file, 'utf8');
      const rel = relative(ROOT, file);
      if (rel !== join('src', 'core', 'retry.ts'))
        assert.doesNotMatch(text, /attempt\s*\+\+|attempt\s*\+=/, `${rel} has a retry loop of its own`);
      if (rel !== join('src', 'core', 'sleep.ts'))
        assert.doesNotMatch(text, /new Promise\(\(\w+\) => setTimeout\(/, `${rel} makes its own timer promise`);
    }
  });

  it('keeps the configuration table of docs/configuration.md in step with the schema (npm run docs:config)', () => {
    const readme = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');
    const table = readme.slice(readme.indexOf(TABLE_START) + TABLE_START.length, readme.indexOf(TABLE_END)).trim();
    assert.equal(table, configTable());
  });
});

describe('produce progress', () => {
  it('draws a bar with count, rate and ETA on a terminal, and ends it with a newline', async () => {
    let out = '';
    const p = new Progress({
      total: 1000,
      sink: { tty: true, write: (s) => (out += s) },
      log: silentLogger(),
      intervalMs: 1000,
    });
    p.add(250);
    p.add(750);
    p.stop();
    assert.match(out, /\[=+\] 100% 1000\/1000 [\d,]+\/s ETA \d+s/);
    assert.ok(out.endsWith('\n'));
  });

  it('logs a "produce progress" line instead when stderr is not a terminal', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = silentLogger();
    log.info = ((fields: Record<string, unknown>, msg: string) =>
      lines.push({ ...fields, msg })) as unknown as typeof log.info;
    const p = new Progress({
      total: 10,
      sink: { tty: false, write: () => assert.fail('no bar outside a terminal') },
      log,
      intervalMs: 20,
    });
    p.add(4);
    await new Promise<void>((resolve) => setTimeout(resolve, 70));
    p.stop();
    assert.ok(lines.length >= 1);
    assert.deepEqual(
      { ...lines[0], rate: 0, etaSeconds: 0 },
      { published: 4, total: 10, rate: 0, etaSeconds: 0, msg: 'produce progress' },
    );
  });
});
