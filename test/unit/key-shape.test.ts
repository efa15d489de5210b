// A key's canonical text, as JavaScript makes and reads it (the SQL side is tested against MariaDB in
// test/integration/key-shapes.test.ts): one text per tuple and one tuple per text, whatever its characters.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ColumnMeta } from '../../src/user-tables/key-fit.js';
import {
  decodeKey,
  displayKey,
  encodeKey,
  envelopeParts,
  keyInSql,
  typedKey,
  type KeyPart,
  type KeyShape,
} from '../../src/user-tables/key-shape.js';

const meta = (type: string, chars: number | null = null): ColumnMeta => ({
  name: 'c',
  type,
  columnType: type,
  nullable: false,
  scale: 0,
  precision: null,
  chars,
  charset: null,
  collation: null,
});
const part = (column: string, kind: KeyPart['kind'], type: string, chars: number | null = null): KeyPart => ({
  column,
  kind,
  meta: meta(type, chars),
});
const composite: KeyShape = {
  parts: [part('t', 'int', 'int'), part('n', 'string', 'varchar', 20), part('b', 'binary', 'varbinary', 4)],
};

describe('a composite key text', () => {
  it('round-trips every tuple, commas and backslashes in text parts included', () => {
    let seed = 7;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const alphabet = ['a', ',', '\\', ' ', 'é', '\u0000'];
    for (let i = 0; i < 500; i++) {
      const text = Array.from({ length: Math.floor(rand() * 6) }, () => alphabet[Math.floor(rand() * 6)]).join('');
      const tuple = [String(Math.floor(rand() * 100) - 50), text, ['', '00', 'ff00'][Math.floor(rand() * 3)]!];
      if (tuple[2] === '') tuple[2] = '01';
      const encoded = encodeKey(composite, tuple);
      assert.deepEqual(decodeKey(composite, encoded), tuple, encoded);
    }
  });

  it('is refused when it is no tuple of this shape', () => {
    for (const bad of ['1,a', '1,a,00,00', 'x,a,00', '1,a\\q,00', '1,a,0g', '1,a,0000000000'])
      assert.equal(decodeKey(composite, bad), null, bad);
  });

  it('is typed as one argument per part or as the joined text; the envelope gets the parts', () => {
    assert.deepEqual(typedKey(composite, ['7', 'a,b', 'FF']), { text: '7,a\\,b,ff' });
    assert.deepEqual(typedKey(composite, ['7,a\\,b,ff']), { text: '7,a\\,b,ff' });
    assert.match((typedKey(composite, ['7', 'a']) as { error: string }).error, /3 parts \(t: an integer, n: text/);
    assert.deepEqual(envelopeParts(composite, '7,a\\,b,ff'), [7, 'a,b', 'ff']);
    assert.deepEqual(envelopeParts(composite, '9007199254740993,a,ff'), ['9007199254740993', 'a', 'ff']);
  });
});

describe('a UUID-shaped key', () => {
  const uuid: KeyShape = { parts: [part('id', 'uuid', 'uuid')] };
  const bin16: KeyShape = { parts: [part('id', 'binary', 'binary', 16)] };
  it('is shown 8-4-4-4-12 and typed with or without dashes, in either case', () => {
    for (const shape of [uuid, bin16]) {
      assert.equal(displayKey(shape, 'ab'.repeat(16)), 'abababab-abab-abab-abab-abababababab');
      assert.deepEqual(typedKey(shape, ['ABABABAB-ABAB-ABAB-ABAB-ABABABABABAB']), { text: 'ab'.repeat(16) });
      assert.ok('error' in typedKey(shape, ['abab']));
    }
  });

  it('is looked up by its bytes: BINARY as a Buffer, never as text', () => {
    const params: unknown[] = [];
    assert.equal(keyInSql(bin16, ['00'.repeat(16), 'zz'], params), 's.`id` IN (?)');
    assert.deepEqual(params, [[Buffer.alloc(16)]]);
    assert.equal(keyInSql(bin16, ['zz'], []), 'FALSE');
  });
});
