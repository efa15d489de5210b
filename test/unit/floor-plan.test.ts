// The floor plan of docs/architecture.md, enforced: every import in src/ (type imports, re-exports and
// import() included) goes to the importer's own room or to a room on a lower floor; no cycle among files; every
// room on the plan exists and every folder of src/ is on it; SQL only in the database rooms.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { ROOT } from '../helpers/fixtures.js';

const SRC = join(ROOT, 'src');

/** Floors from the top, each a list of rooms, as the fenced `floor-plan` block of docs/architecture.md has them. */
function floorPlan(): string[][] {
  const doc = readFileSync(join(ROOT, 'docs', 'architecture.md'), 'utf8');
  const block = /```floor-plan\n([\s\S]*?)```/.exec(doc);
  assert.ok(block, 'docs/architecture.md has a ```floor-plan block');
  return block[1]!
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/));
}

function sources(dir = SRC): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** A file's room: its folder under src/, or its name for the files at the top (cli, index). */
const roomOf = (file: string): string => {
  const parts = relative(SRC, file).split('/');
  return parts.length === 1 ? parts[0]!.replace(/\.ts$/, '') : parts[0]!;
};

/** Every relative module a file names: import and export declarations, import() calls and import('x') types. */
function importsOf(file: string): string[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const specs: string[] = [];
  const visit = (n: ts.Node): void => {
    if (
      (ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) &&
      n.moduleSpecifier !== undefined &&
      ts.isStringLiteral(n.moduleSpecifier)
    )
      specs.push(n.moduleSpecifier.text);
    if (
      ts.isCallExpression(n) &&
      n.expression.kind === ts.SyntaxKind.ImportKeyword &&
      n.arguments[0] !== undefined &&
      ts.isStringLiteral(n.arguments[0])
    )
      specs.push(n.arguments[0].text);
    if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteral(n.argument.literal))
      specs.push(n.argument.literal.text);
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return specs.filter((s) => s.startsWith('.')).map((s) => resolve(dirname(file), s).replace(/\.js$/, '.ts'));
}

const graph = new Map(sources().map((f) => [f, importsOf(f)]));
const rel = (f: string): string => relative(ROOT, f);

describe('the floor plan (docs/architecture.md)', () => {
  const plan = floorPlan();
  const floor = new Map(plan.flatMap((rooms, i) => rooms.map((r): [string, number] => [r, plan.length - 1 - i])));

  it('places every room of src/ on one floor, and names no room that does not exist', () => {
    const rooms = new Set([...graph.keys()].map(roomOf));
    assert.deepEqual([...rooms].filter((r) => !floor.has(r)).sort(), [], 'rooms missing from the plan');
    assert.deepEqual([...floor.keys()].filter((r) => !rooms.has(r)).sort(), [], 'rooms on the plan with no file');
    assert.equal(floor.size, plan.flat().length, 'a room is on two floors');
  });

  it('lets imports go only to the same room or down', () => {
    const wrong: string[] = [];
    for (const [file, targets] of graph) {
      for (const t of targets) {
        assert.ok(existsSync(t), `${rel(file)} imports ${rel(t)}, which does not exist`);
        const from = roomOf(file);
        const to = roomOf(t);
        if (from !== to && floor.get(to)! >= floor.get(from)!)
          wrong.push(`${rel(file)} -> ${rel(t)} (${from} -> ${to})`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('has no cycle among files', () => {
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const path: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      path.push(f);
      for (const t of graph.get(f) ?? []) {
        if (state.get(t) === 'open') cycles.push([...path.slice(path.indexOf(t)), t].map(rel).join(' -> '));
        else if (!state.has(t)) visit(t);
      }
      path.pop();
      state.set(f, 'done');
    };
    for (const f of graph.keys()) if (!state.has(f)) visit(f);
    assert.deepEqual(cycles, []);
  });

  it('keeps core/ free of sluice: it imports nothing outside itself', () => {
    const out = [...graph]
      .filter(([f]) => roomOf(f) === 'core')
      .flatMap(([f, ts]) => ts.filter((t) => roomOf(t) !== 'core').map((t) => `${rel(f)} -> ${rel(t)}`));
    assert.deepEqual(out, []);
  });

  it('runs SQL only in the database rooms (the demo, playing the user, on its own tables)', () => {
    const DB_ROOMS = new Set(['db', 'ledger', 'user-tables']);
    const outside = [...graph.keys()].filter(
      (f) => !DB_ROOMS.has(roomOf(f)) && /\.(query|execute)(<[^>]*>)?\(/.test(readFileSync(f, 'utf8')),
    );
    const demoOnOwnTables = (f: string): boolean =>
      roomOf(f) === 'demo' &&
      [...readFileSync(f, 'utf8').matchAll(/\b(?:FROM|INTO|JOIN|UPDATE)\s+`?(\w+)/g)].every((m) =>
        m[1]!.startsWith('sluice_demo_'),
      );
    assert.deepEqual(outside.filter((f) => !demoOnOwnTables(f)).map(rel), []);
  });
});
