// What "done" means, against the real MariaDB: a source row is done when a result exists for its key's
// canonical text. Results for keys outside the source are reported apart, never counted; no column type
// (ZEROFILL, unsigned BIGINT past 2^53, DECIMAL(n,0), a case-insensitive collation) makes the producer's
// anti-join and the counts disagree; a NULL-able key is refused before it can become a cursor.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import mysql, { type Connection } from 'mysql2/promise';
import { SourceError } from '../../src/core/errors.js';
import { exactCounts } from '../../src/ledger/counts.js';
import { fetchPendingPage, type PendingFilter } from '../../src/ledger/pending.js';
import { type Pool } from '../../src/db/pool.js';
import { checkSource } from '../../src/user-tables/source.js';
import type { SourceInfo } from '../../src/user-tables/table-info.js';
import { keysInSource } from '../../src/ledger/task-state.js';
import { isComplete } from '../../src/status/collect.js';
import { randomName } from '../helpers/db.js';
import { fileDatabase } from '../helpers/fixtures.js';

let db: Connection;
let pool: Pool;
fileDatabase({ poolSize: 2 }, (d) => ({ db, pool } = d));

const now = new Date();
const addResults = async (pipeline: string, keys: string[]): Promise<void> => {
  if (keys.length > 0)
    await db.query('INSERT INTO sluice_results (pipeline, task_key, started_at, finished_at, duration_ms) VALUES ?', [
      keys.map((k) => [pipeline, k, now, now, 1]),
    ]);
};
const addDead = async (pipeline: string, keys: string[]): Promise<void> => {
  if (keys.length > 0)
    await db.query(
      'INSERT INTO sluice_dead_tasks (pipeline, task_key, error_class, error_message, attempts) VALUES ?',
      [keys.map((k) => [pipeline, k, 'E', 'm', 1])],
    );
};
const filter = (pipeline: string): PendingFilter => ({ pipeline, staleAfterMs: 3_600_000, includeQuarantined: false });

async function source(ddl: string, values: unknown[][]): Promise<SourceInfo> {
  const table = randomName('src');
  await db.query(`CREATE TABLE ${table} (${ddl})`);
  if (values.length > 0) await db.query(`INSERT INTO ${table} VALUES ?`, [values]);
  return checkSource(pool, { table, key: 'id', columns: [] }, 'p');
}

async function allPending(src: SourceInfo, pipeline: string): Promise<string[]> {
  const keys: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await fetchPendingPage(pool, src, filter(pipeline), after, 2);
    keys.push(...page.map((r) => r.keyText));
    if (page.length < 2) return keys;
    after = page[page.length - 1]!.keyText;
  }
}

describe('the canonical key text', () => {
  it(
    'is the plain decimal form for a ZEROFILL key: results stored by the ' +
      'worker count, and the rerun finds nothing',
    async () => {
      const src = await source('id INT(6) UNSIGNED ZEROFILL PRIMARY KEY', [[7], [42], [100]]);
      const p = randomName('p');
      const page = await fetchPendingPage(pool, src, filter(p), undefined, 10);
      assert.deepEqual(
        page.map((r) => [r.keyText, r.key]),
        [
          ['7', 7],
          ['42', 42],
          ['100', 100],
        ],
      );
      await addResults(p, ['7', '42', '100']);
      const c = await exactCounts(pool, src, filter(p));
      assert.deepEqual([c.source, c.done, c.pending, c.orphans], [3, 3, 0, 0]);
      assert.deepEqual(await allPending(src, p), []);
    },
  );

  it('keeps unsigned BIGINT keys past 2^53 and DECIMAL(n,0) keys exact, as strings in the envelope', async () => {
    const big = await source('id BIGINT UNSIGNED PRIMARY KEY', [['18446744073709551615'], ['9007199254740993'], [5]]);
    const page = await fetchPendingPage(pool, big, filter(randomName('p')), undefined, 10);
    assert.deepEqual(
      page.map((r) => r.key),
      [5, '9007199254740993', '18446744073709551615'],
    );
    const dec = await source('id DECIMAL(30,0) PRIMARY KEY', [['123456789012345678901234567890'], [-3]]);
    assert.equal(dec.keyKind, 'int');
    const p = randomName('p');
    assert.deepEqual(
      (await fetchPendingPage(pool, dec, filter(p), undefined, 10)).map((r) => r.keyText),
      ['-3', '123456789012345678901234567890'],
    );
    await addResults(p, ['-3', '123456789012345678901234567890']);
    assert.equal((await exactCounts(pool, dec, filter(p))).done, 2);
  });

  it(
    'compares text keys byte for byte whatever the column collation: a result ' + 'for "abc" does not finish "ABC"',
    async () => {
      const src = await source('id VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY KEY', [['ABC'], ['x y'], ['é']]);
      const p = randomName('p');
      await addResults(p, ['abc', 'x y ', 'é']);
      const c = await exactCounts(pool, src, filter(p));
      assert.deepEqual([c.source, c.done, c.orphans], [3, 1, 2]);
      assert.deepEqual(await allPending(src, p), ['ABC', 'x y']);
      assert.deepEqual([...(await keysInSource(pool, src, ['abc', 'ABC', 'x y ', 'é']))].sort(), ['ABC', 'é']);
    },
  );

  it('reads keys of up to 2,048 bytes in full: two keys sharing their first 600 characters stay two', async () => {
    const src = await source('id VARCHAR(700) COLLATE utf8mb4_bin PRIMARY KEY', [
      ['k'.repeat(600) + 'a'],
      ['k'.repeat(600) + 'b'],
    ]);
    const p = randomName('p');
    await addResults(p, ['k'.repeat(600) + 'a']);
    assert.deepEqual(await allPending(src, p), ['k'.repeat(600) + 'b']);
    assert.deepEqual(
      [...(await keysInSource(pool, src, ['k'.repeat(600) + 'b', 'k'.repeat(600)]))],
      ['k'.repeat(600) + 'b'],
    );
  });

  it('refuses fractional, floating and date key columns with the config key named', async () => {
    await assert.rejects(
      source('id DOUBLE PRIMARY KEY', []),
      (e: unknown) => e instanceof SourceError && /source\.key.*double/.test(e.message),
    );
    await assert.rejects(
      source('id DATETIME PRIMARY KEY', []),
      (e: unknown) => e instanceof SourceError && e.code === 'SOURCE_KEY_TYPE',
    );
    await assert.rejects(
      source('id DECIMAL(10,2) PRIMARY KEY', []),
      (e: unknown) => e instanceof SourceError && e.code === 'SOURCE_KEY_TYPE',
    );
  });
});

describe('pending tasks of given keys (a requeue)', () => {
  it('are exactly those keys: integers as given, text byte for byte whatever the collation', async () => {
    const ints = await source('id BIGINT PRIMARY KEY', [[1], [2], [3], [40]]);
    const p = randomName('p');
    await addResults(p, ['3']);
    const page = await fetchPendingPage(
      pool,
      ints,
      { ...filter(p), keys: ['2', '3', '40', 'not-a-number'] },
      undefined,
      10,
    );
    assert.deepEqual(
      page.map((r) => r.keyText),
      ['2', '40'],
      'pending ones only: 3 is done',
    );
    assert.deepEqual(await fetchPendingPage(pool, ints, { ...filter(p), keys: [] }, undefined, 10), []);

    const text = await source('id VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY KEY', [['ABC'], ['x y']]);
    const q = randomName('p');
    const rows = await fetchPendingPage(pool, text, { ...filter(q), keys: ['abc', 'x y'] }, undefined, 10);
    assert.deepEqual(
      rows.map((r) => r.keyText),
      ['x y'],
      "'abc' is not the key 'ABC'",
    );
  });
});

describe('a source key that may be NULL', () => {
  it('is refused at start with the ALTER TABLE that fixes it', async () => {
    await assert.rejects(source('id INT NULL, UNIQUE (id)', [[1], [null]]), (e: unknown) => {
      assert.ok(e instanceof SourceError);
      assert.equal(e.code, 'SOURCE_KEY_NULLABLE');
      assert.match(e.hint ?? '', /ALTER TABLE \S+ MODIFY id int\(11\) NOT NULL/);
      return true;
    });
  });
});

describe('status --check', () => {
  it('passes if and only if every source row has a result (random sources, results, orphans, quarantine)', async () => {
    let seed = 20261126;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let trial = 0; trial < 25; trial++) {
      const n = Math.floor(rand() * 12);
      const ids = [...new Set(Array.from({ length: n }, () => 1 + Math.floor(rand() * 30)))];
      const src = await source(
        'id INT PRIMARY KEY',
        ids.map((i) => [i]),
      );
      const p = randomName('p');
      // Results for a random subset, or (half the trials) for all of them; plus keys outside the source.
      const withResult = rand() < 0.5 ? ids : ids.filter(() => rand() < 0.7);
      const foreign = Array.from({ length: Math.floor(rand() * 4) }, (_, i) => String(100 + i));
      await addResults(p, [...withResult.map(String), ...foreign]);
      await addDead(p, ids.filter((i) => !withResult.includes(i) && rand() < 0.5).map(String));
      // A source row deleted after it was done leaves a result behind.
      if (ids.length > 0 && rand() < 0.3)
        await db.query(`DELETE FROM ${src.table} WHERE id = ?`, [withResult[0] ?? ids[0]]);
      const c = await exactCounts(pool, src, filter(p));
      const [[row]] = await db.query<mysql.RowDataPacket[]>(
        `SELECT COUNT(*) AS n FROM ${src.table} s WHERE NOT EXISTS (SELECT 1 ` +
          `FROM sluice_results r WHERE r.pipeline = ? ` +
          `AND r.task_key = CAST(s.id AS CHAR))`,
        [p],
      );
      const everyRowDone = Number(row?.n) === 0;
      assert.equal(isComplete({ ...c }), everyRowDone, `trial ${trial}: ${JSON.stringify(c)}`);
      assert.equal(c.source - c.done, Number(row?.n), `trial ${trial}: missing`);
      const [[all]] = await db.query<mysql.RowDataPacket[]>(
        'SELECT COUNT(*) AS n FROM sluice_results WHERE pipeline = ?',
        [p],
      );
      assert.equal(c.done + c.orphans, Number(all?.n), `trial ${trial}: every result is done or an orphan`);
    }
  });

  it('never passes on an estimate', () => {
    assert.equal(isComplete({ source: 3, done: 3, exact: false }), false);
    assert.equal(isComplete({ source: 3, done: 3, exact: true }), true);
  });
});

describe('status rates', () => {
  it('are per second over the actual window: 20 results over the last 10 s read about 2/s, not 20/60', async () => {
    const { ledgerStatus } = await import('../../src/ledger/status-reads.js');
    const src = await source(
      'id INT PRIMARY KEY',
      Array.from({ length: 20 }, (_, i) => [i + 1]),
    );
    const p = randomName('p');
    await db.query(
      'INSERT INTO sluice_results (pipeline, task_key, started_at, finished_at, ' +
        'duration_ms) SELECT ?, CAST(seq AS CHAR), NOW(3), NOW(3) - INTERVAL (seq ' +
        '/ 2) SECOND, 1 FROM seq_1_to_20',
      [p],
    );
    const s = await ledgerStatus(pool, src, p, 3_600_000, true, []);
    assert.equal(s.doneLastMinute, 20);
    assert.ok(s.resultsPerSecond > 1.8 && s.resultsPerSecond < 2.2, `rate ${s.resultsPerSecond}`);
  });
});
