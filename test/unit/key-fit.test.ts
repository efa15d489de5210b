// Whether a result key column holds every source key as itself, from the columns' metadata alone: the
// pairs that merge or cut keys are told apart from the ones that fit, and the fix is the statement that
// makes the result key like the source key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fitMessage, keyFit, type ColumnMeta } from '../../src/user-tables/key-fit.js';

const text = (
  columnType: string,
  collation: string,
  chars: number,
  charset = collation.split('_')[0]!,
): ColumnMeta => ({
  name: 'k',
  type: columnType.replace(/\(.*$/, ''),
  columnType,
  nullable: false,
  scale: null,
  precision: null,
  chars,
  charset,
  collation,
});
const int = (columnType: string, precision: number | null = null): ColumnMeta => ({
  name: 'id',
  type: columnType.replace(/[ (].*$/, ''),
  columnType,
  nullable: false,
  scale: 0,
  precision,
  chars: null,
  charset: null,
  collation: null,
});

describe('a result key column that cannot hold every source key as itself', () => {
  it('merges: a case- or accent-insensitive collation, or a padding one for a no-pad source', () => {
    const bin = text('varchar(40)', 'utf8mb4_bin', 40);
    assert.equal(keyFit(bin, text('varchar(40)', 'utf8mb4_general_ci', 40), 'string')?.class, 'merges');
    assert.equal(
      keyFit(text('varchar(40)', 'utf8mb4_unicode_ci', 40), text('varchar(40)', 'utf8mb4_general_ci', 40), 'string')
        ?.class,
      'merges',
    );
    assert.equal(
      keyFit(text('varchar(40)', 'utf8mb4_nopad_bin', 40), bin, 'string')?.class,
      'merges',
      "'a' and 'a ' are two no-pad keys, one padded key",
    );
  });

  it(
    'cuts: a shorter length, a CHAR column for VARCHAR keys, a character set ' +
      'that lacks characters, a smaller integer range',
    () => {
      const src = text('varchar(40)', 'utf8mb4_bin', 40);
      assert.equal(keyFit(src, text('varchar(20)', 'utf8mb4_bin', 20), 'string')?.class, 'cuts');
      assert.equal(keyFit(src, text('char(40)', 'utf8mb4_bin', 40), 'string')?.class, 'cuts');
      assert.equal(keyFit(src, text('varchar(40)', 'latin1_bin', 40), 'string')?.class, 'cuts');
      assert.equal(keyFit(int('bigint(20)'), int('int(11)'), 'int')?.class, 'cuts');
      assert.equal(keyFit(int('int(10) unsigned'), int('int(11)'), 'int')?.class, 'cuts');
      assert.equal(keyFit(int('decimal(30,0)', 30), int('bigint(20)'), 'int')?.class, 'cuts');
    },
  );

  it('fits: the same column, a finer binary collation, a wider column or range, a wider character set', () => {
    assert.equal(
      keyFit(text('varchar(40)', 'utf8mb4_general_ci', 40), text('varchar(40)', 'utf8mb4_general_ci', 40), 'string'),
      null,
    );
    assert.equal(
      keyFit(text('varchar(40)', 'utf8mb4_general_ci', 40), text('varchar(40)', 'utf8mb4_bin', 40), 'string'),
      null,
    );
    assert.equal(
      keyFit(text('varchar(40)', 'utf8mb4_bin', 40), text('varchar(64)', 'utf8mb4_nopad_bin', 64), 'string'),
      null,
    );
    assert.equal(keyFit(text('varchar(40)', 'latin1_bin', 40), text('varchar(40)', 'utf8mb4_bin', 40), 'string'), null);
    assert.equal(keyFit(text('char(8)', 'ascii_bin', 8), text('char(8)', 'utf8mb4_bin', 8), 'string'), null);
    assert.equal(
      keyFit(text('text', 'utf8mb4_bin', 16383), text('varchar(2048)', 'utf8mb4_bin', 2048), 'string'),
      null,
      'keys over 2,048 bytes are never published',
    );
    assert.equal(keyFit(int('int(11)'), int('bigint(20)'), 'int'), null);
    assert.equal(keyFit(int('int(10) unsigned'), int('bigint(20)'), 'int'), null);
    assert.equal(keyFit(int('smallint(6)'), int('decimal(5,0)', 5), 'int'), null);
    assert.equal(
      keyFit(text('varchar(40)', 'utf8mb3_general_ci', 40), text('varchar(40)', 'utf8mb4_general_ci', 40), 'string'),
      null,
      'a legacy utf8mb3 source beside a utf8mb4 table',
    );
    assert.equal(
      keyFit(text('varchar(40)', 'utf8mb4_0900_ai_ci', 40), text('varchar(40)', 'utf8mb4_0900_ai_ci', 40), 'string'),
      null,
      "MySQL 8's default on both sides",
    );
    assert.equal(
      keyFit(text('varchar(40)', 'utf8mb4_0900_ai_ci', 40), text('varchar(40)', 'utf8mb4_0900_as_cs', 40), 'string'),
      null,
      'accent- and case-sensitive is finer',
    );
    assert.equal(
      keyFit(text('varchar(40)', 'utf8mb4_0900_as_cs', 40), text('varchar(40)', 'utf8mb4_0900_ai_ci', 40), 'string')
        ?.class,
      'merges',
    );
    assert.equal(
      keyFit(text('varchar(40)', 'utf8mb4_0900_ai_ci', 40), text('varchar(40)', 'utf8mb4_bin', 40), 'string')?.class,
      'merges',
      "a NO PAD source's 'a' and 'a ' are one padded key",
    );
  });

  it('names both columns and the ALTER TABLE that makes the result key like the source key', () => {
    const src = text('varchar(40)', 'utf8mb4_bin', 40);
    const res = text('varchar(40)', 'utf8mb4_general_ci', 40);
    const { message, hint } = fitMessage(
      keyFit(src, res, 'string')!,
      { table: 'docs', col: { ...src, name: 'id' } },
      { table: 'results', col: res },
    );
    assert.match(
      message,
      /^'results\.k' \(varchar\(40\) utf8mb4_general_ci\) can merge keys of 'docs\.id' \(varchar\(40\) utf8mb4_bin\)/,
    );
    assert.equal(
      hint,
      'ALTER TABLE results MODIFY k varchar(40) CHARACTER SET utf8mb4 COLLATE ' +
        'utf8mb4_bin NOT NULL (or set results.mergeKeys: true to accept merged keys)',
    );
    const cut = fitMessage(
      keyFit(int('bigint(20)'), int('int(11)'), 'int')!,
      { table: 'docs', col: int('bigint(20)') },
      { table: 'results', col: int('int(11)') },
    );
    assert.match(cut.message, /can cut keys of 'docs\.id' \(bigint\(20\)\): it holds -2147483648\.\.2147483647/);
    assert.equal(
      cut.hint,
      'ALTER TABLE results MODIFY id bigint(20) NOT NULL',
      'results.mergeKeys never accepts a cut',
    );
  });
});
