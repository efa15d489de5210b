// Every key shape people have, against the real MariaDB: BINARY/VARBINARY and MariaDB's UUID keys (their
// canonical text is the lowercase hex of every byte), composite keys (paged over the tuple by the index, matched on
// every part), and merged views as sources. The producer's pages, the counts, the worker's source check and the
// user's result table agree with an independent NOT EXISTS on every shape, hostile bytes included.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { SourceError } from '../../src/core/errors.js';
import { exactCounts } from '../../src/ledger/counts.js';
import { fetchPendingPage, type PendingFilter } from '../../src/ledger/pending.js';
import type { Pool } from '../../src/db/pool.js';
import { checkSource } from '../../src/user-tables/source.js';
import { checkResults } from '../../src/user-tables/results-table.js';
import type { SourceInfo } from '../../src/user-tables/table-info.js';
import { keysInSource, keysWithResult } from '../../src/ledger/task-state.js';
import { displayKey, keyAfterSql, keyOrderSql, keyTextSql, typedKey } from '../../src/user-tables/key-shape.js';
import { isComplete } from '../../src/status/collect.js';
import { randomName } from '../helpers/db.js';
import { fileDatabase } from '../helpers/fixtures.js';

let db: Connection;
let pool: Pool;
fileDatabase({ poolSize: 2 }, (d) => ({ db, pool } = d));

const now = new Date();
const filter = (pipeline: string): PendingFilter => ({ pipeline, staleAfterMs: 3_600_000, includeQuarantined: false });
const addResults = async (pipeline: string, keys: string[]): Promise<void> => {
  if (keys.length > 0)
    await db.query('INSERT INTO sluice_results (pipeline, task_key, started_at, finished_at, duration_ms) VALUES ?', [
      keys.map((k) => [pipeline, k, now, now, 1]),
    ]);
};

async function table(ddl: string, values: unknown[][]): Promise<string> {
  const name = randomName('t');
  await db.query(`CREATE TABLE ${name} (${ddl})`);
  if (values.length > 0) await db.query(`INSERT INTO ${name} VALUES ?`, [values]);
  return name;
}

async function source(ddl: string, values: unknown[][], key: string | string[] = 'id'): Promise<SourceInfo> {
  return checkSource(pool, { table: await table(ddl, values), key, columns: [] }, 'p');
}

/** Every pending key, two per page, in the order the pages came. */
async function allPending(src: SourceInfo, pipeline: string, pageSize = 2): Promise<string[]> {
  const keys: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await fetchPendingPage(pool, src, filter(pipeline), after, pageSize);
    keys.push(...page.map((r) => r.keyText));
    if (page.length < pageSize) return keys;
    after = page[page.length - 1]!.keyText;
  }
}

/** The canonical texts of the source's rows in key order, read independently of the pages. */
async function textsOf(src: SourceInfo): Promise<string[]> {
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT ${keyTextSql(src)} AS k FROM ${src.table} s ORDER BY ${keyOrderSql(src)}`,
  );
  return rows.map((r) => (Buffer.isBuffer(r.k) ? r.k.toString('utf8') : String(r.k)));
}

const hex = (...bytes: number[]): Buffer => Buffer.from(bytes);

describe('binary keys', () => {
  it('are the lowercase hex of every byte: BINARY(16) padding, 0x00 and 0xFF kept, paged in byte order', async () => {
    const src = await source('id BINARY(16) PRIMARY KEY', [
      [Buffer.alloc(16, 0xff)],
      [Buffer.alloc(16, 0)],
      [hex(0x41)], // padded to 16 bytes by the column
      [Buffer.from('00112233445566778899aabbccddeeff', 'hex')],
    ]);
    assert.equal(src.keyKind, 'binary');
    const p = randomName('p');
    const pending = await allPending(src, p);
    assert.deepEqual(pending, [
      '00'.repeat(16),
      '00112233445566778899aabbccddeeff',
      '41' + '00'.repeat(15),
      'ff'.repeat(16),
    ]);
    assert.deepEqual(pending, await textsOf(src));
    const page = await fetchPendingPage(pool, src, filter(p), undefined, 1);
    assert.equal(page[0]!.key, '00'.repeat(16), 'the envelope carries the hex');
    await addResults(p, ['41' + '00'.repeat(15), '41']);
    const c = await exactCounts(pool, src, filter(p));
    assert.deepEqual([c.source, c.done, c.orphans], [4, 1, 1], "'41' alone is not the padded key");
    assert.deepEqual(
      [...(await keysInSource(pool, src, ['41' + '00'.repeat(15), '41', 'FF'.repeat(16), 'ff'.repeat(16)]))].sort(),
      ['41' + '00'.repeat(15), 'ff'.repeat(16)],
    );
  });

  it('VARBINARY keys keep trailing 0x00 bytes: "a" and "a\\0" are two keys', async () => {
    const src = await source('id VARBINARY(8) PRIMARY KEY', [[hex(0x61)], [hex(0x61, 0)], [hex(0x61, 0x20)]]);
    const p = randomName('p');
    assert.deepEqual(await allPending(src, p), ['61', '6100', '6120']);
    await addResults(p, ['6100']);
    assert.deepEqual(await allPending(src, p), ['61', '6120']);
  });

  it('BINARY(16) and UUID keys are shown as UUIDs and typed in either form', async () => {
    const src = await source('id BINARY(16) PRIMARY KEY', []);
    const text = '123e4567e89b12d3a456426655440000';
    assert.equal(displayKey(src, text), '123e4567-e89b-12d3-a456-426655440000');
    assert.deepEqual(typedKey(src, ['123E4567-E89B-12D3-A456-426655440000']), { text });
    assert.deepEqual(typedKey(src, [text]), { text });
    assert.ok('error' in typedKey(src, ['not-a-uuid']));
    const bytes = await source('id VARBINARY(4) PRIMARY KEY', []);
    assert.equal(displayKey(bytes, '00ff'), '00ff', 'other bytes stay hex');
  });
});

describe("MariaDB's UUID keys", () => {
  it("page in the column's own order (not the text's) and compare as UUIDs", async () => {
    // Version-1 UUIDs: MariaDB orders them by time, swapping the text's segments.
    const ids = [
      '10000000-0000-1000-8000-000000000000',
      '00000000-0001-1000-8000-000000000000',
      '00000001-0000-1000-8000-000000000000',
      '123e4567-e89b-42d3-a456-426655440000',
    ];
    const src = await source(
      'id UUID PRIMARY KEY',
      ids.map((i) => [i]),
    );
    assert.equal(src.keyKind, 'uuid');
    const p = randomName('p');
    const pending = await allPending(src, p, 1);
    assert.deepEqual(pending, await textsOf(src), 'every row once, in the index order');
    assert.equal(new Set(pending).size, 4);
    assert.ok(pending.every((k) => /^[0-9a-f]{32}$/.test(k)));
    assert.equal(
      displayKey(src, pending[0]!),
      (await db.query<RowDataPacket[]>(`SELECT CAST(id AS CHAR) AS t FROM ${src.table} ORDER BY id LIMIT 1`))[0][0]!.t,
    );
    await addResults(p, [pending[1]!]);
    assert.deepEqual(await allPending(src, p), [pending[0], pending[2], pending[3]]);
    assert.deepEqual([...(await keysInSource(pool, src, [pending[2]!, '00'.repeat(16)]))], [pending[2]]);
  });
});

describe('composite keys', () => {
  const ddl =
    'tenant_id INT NOT NULL, id VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL, ' +
    'PRIMARY KEY (tenant_id, id)';

  it('page over the tuple, every part exact (a case-insensitive text part, hostile characters)', async () => {
    const src = await source(
      ddl,
      [
        [2, 'a'],
        [1, 'b'],
        [1, 'A,1'],
        [1, 'x\\'],
        [10, 'a'],
        [2, 'B'],
      ],
      ['tenant_id', 'id'],
    );
    assert.equal(src.keyKind, 'composite');
    const p = randomName('p');
    const pending = await allPending(src, p);
    assert.deepEqual(pending, ['1,A\\,1', '1,b', '1,x\\\\', '2,a', '2,B', '10,a']);
    const page = await fetchPendingPage(pool, src, filter(p), undefined, 1);
    assert.deepEqual(page[0]!.parts, [1, 'A,1'], 'the envelope gains the parts');
    await addResults(p, ['1,a\\,1', '2,a', '2,b']);
    const c = await exactCounts(pool, src, filter(p));
    assert.deepEqual([c.done, c.orphans], [1, 2], "'1,a\\,1' is not (1, 'A,1'); '2,b' is not (2, 'B')");
    assert.deepEqual([...(await keysInSource(pool, src, ['1,A\\,1', '1,a\\,1', '2,b', '10,a', '1,A,1']))].sort(), [
      '1,A\\,1',
      '10,a',
    ]);
    assert.deepEqual(typedKey(src, ['1', 'A,1']), { text: '1,A\\,1' });
    assert.deepEqual(typedKey(src, ['1,A\\,1']), { text: '1,A\\,1' });
    assert.ok('error' in typedKey(src, ['x', 'a']), 'an integer part must be an integer');
  });

  it('pages by the index: EXPLAIN shows a range on the primary key, and a page reads only its rows', async () => {
    const name = await table(ddl, []);
    await db.query(`INSERT INTO ${name} SELECT seq % 3, CONCAT('k', seq) FROM seq_1_to_30000`);
    await db.query(`ANALYZE TABLE ${name}`);
    const src = await checkSource(pool, { table: name, key: ['tenant_id', 'id'], columns: [] }, 'p');
    const params: unknown[] = [];
    const cond = keyAfterSql(src, '1,k5000', params);
    const [plan] = await pool.query<RowDataPacket[]>(
      `EXPLAIN SELECT * FROM ${name} s WHERE ${cond} ORDER BY ${keyOrderSql(src)} LIMIT 10`,
      params,
    );
    assert.equal(plan[0]!.type, 'range', JSON.stringify(plan));
    assert.equal(plan[0]!.key, 'PRIMARY');
    const conn = await pool.getConnection();
    try {
      await conn.query('FLUSH STATUS');
      await conn.query(`SELECT * FROM ${name} s WHERE ${cond} ORDER BY ${keyOrderSql(src)} LIMIT 10`, params);
      const [st] = await conn.query<RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Handler_read_next'");
      assert.ok(Number(st[0]!.Value) <= 20, `read ${st[0]!.Value} rows for a page of 10`);
    } finally {
      conn.release();
    }
  });

  it('are refused with the right advice: a part alone, or the index in another order', async () => {
    const name = await table(ddl, []);
    await assert.rejects(
      checkSource(pool, { table: name, key: 'id', columns: [] }, 'p'),
      (e: unknown) =>
        e instanceof SourceError &&
        e.code === 'SOURCE_KEY_NOT_UNIQUE' &&
        /source\.key: \['tenant_id', 'id'\]/.test(e.hint ?? '') &&
        !/ALTER TABLE/.test(e.hint ?? ''),
    );
    await assert.rejects(
      checkSource(pool, { table: name, key: ['id', 'tenant_id'], columns: [] }, 'p'),
      (e: unknown) => e instanceof SourceError && /another order/.test(e.message),
    );
  });

  it('meet a result table of the same shape part by part', async () => {
    const src = await source(
      ddl,
      [
        [1, 'a'],
        [1, 'B'],
        [2, 'a'],
      ],
      ['tenant_id', 'id'],
    );
    const res = await table(
      'tid INT NOT NULL, rid VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL, ' +
        'body TEXT, PRIMARY KEY (tid, rid)',
      [
        [1, 'a', 'x'],
        [1, 'b', 'y'],
      ],
    );
    const r = await checkResults(
      pool,
      { table: res, key: ['tid', 'rid'], columns: ['body'], row: () => ({}), onConflict: 'keep', mergeKeys: false },
      src,
      'p',
    );
    const withResults = { ...src, results: r };
    const c = await exactCounts(pool, withResults, filter(randomName('p')));
    assert.deepEqual([c.source, c.done], [3, 1], "(1, 'b') is not the key (1, 'B')");
    assert.deepEqual([...(await keysWithResult(pool, r, ['1,a', '1,B', '1,b']))].sort(), ['1,a', '1,b']);
    await assert.rejects(
      checkResults(
        pool,
        { table: res, key: 'tid', columns: ['body'], row: () => ({}), onConflict: 'keep', mergeKeys: false },
        src,
        'p',
      ),
      (e: unknown) => e instanceof SourceError && e.code === 'RESULTS_KEY_SHAPE',
    );
  });
});

describe('a view as source', () => {
  it('is accepted when MariaDB merges it over one table whose key is unique, and pages by that index', async () => {
    const base = await table('id INT PRIMARY KEY, v INT NOT NULL', [
      [1, 5],
      [2, 1],
      [3, 9],
    ]);
    const view = randomName('v');
    await db.query(`CREATE VIEW ${view} AS SELECT id, v FROM ${base} WHERE v > 2`);
    const src = await checkSource(pool, { table: view, key: 'id', columns: ['v'] }, 'p');
    assert.deepEqual(await allPending(src, randomName('p')), ['1', '3']);
    // The key column named as in the view (renamed), and a table alias in the view's definition.
    const renamed = randomName('v');
    await db.query(`CREATE VIEW ${renamed} AS SELECT b.id AS doc, b.v FROM ${base} b WHERE b.v > 2`);
    const r = await checkSource(pool, { table: renamed, key: 'doc', columns: ['v'] }, 'p');
    assert.deepEqual(await allPending(r, randomName('p')), ['1', '3']);
  });

  it('is refused in one line, with source.where as the way and no ALTER TABLE, when it cannot be paged', async () => {
    const base = await table('id INT PRIMARY KEY, g INT NOT NULL', [[1, 1]]);
    const other = await table('x INT, n INT NULL', [[1, 1]]);
    const cases: Array<[string, RegExp]> = [
      [`CREATE ALGORITHM=TEMPTABLE VIEW %s AS SELECT id, g FROM ${base}`, /may not merge \(algorithm TEMPTABLE\)/],
      [`CREATE VIEW %s AS SELECT b.id, b.g FROM ${base} b JOIN ${other} o ON o.x = b.g`, /more than one table/],
      [
        `CREATE ALGORITHM=MERGE VIEW %s AS SELECT id + 0 AS id FROM ${base}`,
        /key column\(s\) id are not plain columns of/,
      ],
      [`CREATE VIEW %s AS SELECT g, id FROM ${base}`, /over '.*', where its key is not unique/],
      [`CREATE VIEW %s AS SELECT n AS id FROM ${other}`, /whose key column id may be NULL/],
    ];
    for (const [ddlOf, why] of cases) {
      const view = randomName('v');
      await db.query(ddlOf.replace('%s', view));
      const key = why.source.includes('not unique') ? 'g' : 'id';
      await assert.rejects(checkSource(pool, { table: view, key, columns: [] }, 'p'), (e: unknown) => {
        assert.ok(e instanceof SourceError, String(e));
        assert.equal(e.code, 'SOURCE_VIEW');
        assert.match(e.message, why);
        assert.doesNotMatch(e.hint ?? '', /ALTER TABLE/);
        assert.match(e.hint ?? '', /source\.where/);
        return true;
      });
    }
  });
});

describe('exactness on every shape (random sources, results, deletions)', () => {
  // The oracle: each row's key text computed here from the raw columns, not by sluice's SQL.
  const esc = (t: string): string => t.replace(/[\\,]/g, (c) => `\\${c}`);
  const shapes: Array<{
    name: string;
    ddl: string;
    key: string | string[];
    select: string;
    value: (r: () => number) => unknown[];
    oracle: (row: RowDataPacket) => string;
  }> = [
    {
      name: 'BINARY(16)',
      ddl: 'id BINARY(16) PRIMARY KEY',
      key: 'id',
      select: 'id',
      value: (r) => [Buffer.from([r() < 0.3 ? 0 : 0xff, Math.floor(r() * 4), ...(r() < 0.5 ? [0] : [])])],
      oracle: (row) => (row.id as Buffer).toString('hex'),
    },
    {
      name: 'UUID',
      ddl: 'id UUID PRIMARY KEY',
      key: 'id',
      select: 'CAST(id AS CHAR) AS id',
      value: (r) => [`0000000${Math.floor(r() * 9)}-0000-1000-8000-00000000000${Math.floor(r() * 9)}`],
      oracle: (row) => String(row.id).replace(/-/g, ''),
    },
    {
      name: 'composite',
      ddl: 'a INT NOT NULL, b VARCHAR(4) COLLATE utf8mb4_general_ci NOT NULL, PRIMARY KEY (a, b)',
      key: ['a', 'b'],
      select: 'a, b',
      value: (r) => [Math.floor(r() * 3), ['x', 'X,', 'y\\', 'z'][Math.floor(r() * 4)]],
      oracle: (row) => `${String(row.a)},${esc(String(row.b))}`,
    },
  ];
  for (const shape of shapes) {
    it(`${shape.name}: isComplete, the counts and the pages agree with the oracle`, async () => {
      let seed = 20261207;
      const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      for (let trial = 0; trial < 12; trial++) {
        const name = await table(shape.ddl, []);
        const n = Math.floor(rand() * 10);
        for (let i = 0; i < n; i++) await db.query(`INSERT IGNORE INTO ${name} VALUES (?)`, [shape.value(rand)]);
        const src = await checkSource(pool, { table: name, key: shape.key, columns: [] }, 'p');
        const read = async (): Promise<string[]> =>
          (await db.query<RowDataPacket[]>(`SELECT ${shape.select} FROM ${name}`))[0].map(shape.oracle);
        const p = randomName('p');
        const before = await read();
        const withResult = rand() < 0.4 ? before : before.filter(() => rand() < 0.6);
        await addResults(p, withResult);
        // A source row deleted after it was done leaves its result behind (an orphan).
        if (withResult.length > 0 && rand() < 0.4) await db.query(`DELETE FROM ${name} LIMIT 1`);
        const rows = await read();
        const missing = rows.filter((k) => !withResult.includes(k));
        const c = await exactCounts(pool, src, filter(p));
        assert.equal(isComplete({ ...c }), missing.length === 0, `trial ${trial}: ${JSON.stringify(c)}`);
        assert.equal(c.source - c.done, missing.length, `trial ${trial}: missing`);
        assert.equal(c.done + c.orphans, withResult.length, `trial ${trial}: every result is done or an orphan`);
        assert.deepEqual((await allPending(src, p)).sort(), missing.sort(), `trial ${trial}: pending`);
      }
    });
  }
});
