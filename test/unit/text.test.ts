// Texts for bounded columns are cut by UTF-8 bytes, never inside a character; JSON depth is read from text.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cutBytes, jsonDepth } from '../../src/core/text.js';

describe('cutBytes', () => {
  it('leaves a text that fits alone and cuts a longer one to at most the bytes, at a character boundary', () => {
    assert.equal(cutBytes('short', 10), 'short');
    for (const ch of ['a', 'é', '漢', '🦀']) {
      for (const max of [1, 2, 3, 4, 5, 7, 100, 65_535]) {
        const out = cutBytes(ch.repeat(70_000), max);
        assert.ok(Buffer.byteLength(out) <= max, `${ch} x ${max}: ${Buffer.byteLength(out)} bytes`);
        assert.doesNotMatch(out, /\uFFFD/, 'no broken character');
        if (max >= 4 + Buffer.byteLength('…')) assert.ok(out.endsWith('…'));
      }
    }
    const cjk = cutBytes('漢'.repeat(25_000), 65_535);
    assert.equal(Buffer.byteLength(cjk), 65_535 - ((65_535 - 3) % 3));
  });
});

describe('jsonDepth', () => {
  it('counts nesting of arrays and objects, ignoring brackets inside strings', () => {
    assert.equal(jsonDepth('1'), 0);
    assert.equal(jsonDepth('[[{"a":[1]}]]'), 4);
    assert.equal(jsonDepth('["[[[[", "\\"[["]'), 1);
    assert.equal(jsonDepth(JSON.stringify({ a: { b: { c: [] } } })), 4);
  });
});
