// A counting stand-in for the mysql2/promise pool, for unit tests that pin what a hot path costs the
// database (test/unit/statements-per-task.test.ts): no server, no socket. Every call the code makes is
// recorded with its SQL, and answered with the shape mysql2 gives (`[rows, fields]` for a read,
// `[ResultSetHeader, undefined]` for a write), so the code runs as on a happy path.
//
// Counting: every call that goes to the server is one round trip (query, execute, and on a connection
// beginTransaction/commit/rollback, recorded as BEGIN/COMMIT/ROLLBACK); a string holding several statements
// is one round trip and as many statements; a bulk `VALUES ?` or a JSON_TABLE list is one statement however
// many rows it carries. Taking a connection from the pool and releasing it costs neither.
//
// Answers (`freshLedger`): a migrated ledger that knows nothing yet (no result, milestone, attempt,
// quarantine or dispatch), and a source table with keys 1..n, all of them pending. SQL is matched only as far
// as needed to answer; a read nobody matched gets no rows.
//
// `installCountingPools` makes mysql2's createPool hand out counting pools, so code that opens its own pool
// (openPool) can be driven unchanged; restore() puts mysql2 back.

import mysql from 'mysql2/promise';
import { readMigrations } from '../../src/db/migrate.js';

export interface SqlCall {
  sql: string;
  params: readonly unknown[];
  /** Statements in `sql` (BEGIN and COMMIT are statements too). */
  statements: number;
  /** The statement's verb and first table, e.g. "INSERT sluice_milestones", "SELECT docs". */
  kind: string;
}

/**
 * Rows for a read (objects, or arrays when the query asked for rowsAsArray); undefined: no rows. Writes are
 * shown to it too (its answer ignored), so that it can remember what was written.
 */
export type Answer = (sql: string, params: readonly unknown[]) => unknown[] | undefined;

export interface Tally {
  statements: number;
  roundTrips: number;
  /** Statements per kind (a string of several statements is filed under its first one's). */
  byKind: Record<string, number>;
}

/** Counts the statements in a SQL string: `;` outside quotes and comments separates them. */
export function countStatements(sql: string): number {
  let n = 0;
  let text = false;
  const end = (): void => {
    if (text) n++;
    text = false;
  };
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i]!;
    if (c === "'" || c === '"' || c === '`') {
      text = true;
      for (i++; i < sql.length && sql[i] !== c; i++) if (sql[i] === '\\' && c !== '`') i++;
    } else if ((c === '-' && sql[i + 1] === '-') || c === '#') {
      while (i < sql.length && sql[i] !== '\n') i++;
    } else if (c === '/' && sql[i + 1] === '*') {
      const close = sql.indexOf('*/', i + 2);
      i = close === -1 ? sql.length : close + 1;
    } else if (c === ';') end();
    else if (!/\s/.test(c)) text = true;
  }
  end();
  return n;
}

/** "VERB table" of a statement: the table written to, or the first table read from (not a list of keys). */
export function statementKind(sql: string): string {
  const s = sql.replace(/`/g, '').replace(/\s+/g, ' ').trim();
  const verb = (/^\w+/.exec(s)?.[0] ?? '').toUpperCase();
  const table =
    /^INSERT (?:IGNORE )?INTO (\S+)/i.exec(s)?.[1] ??
    /^UPDATE (\S+)/i.exec(s)?.[1] ??
    / FROM \(?(?:SELECT \* FROM )?([\w.]+)/i.exec(s)?.[1];
  // A key list read first (FROM JSON_TABLE(...) j STRAIGHT_JOIN t): the table is the one it is joined with.
  if (table?.toUpperCase() === 'JSON_TABLE') {
    const joined = / (?:STRAIGHT_JOIN|JOIN) ([\w.]+)/i.exec(s)?.[1];
    if (joined !== undefined) return `${verb} ${joined}`;
  }
  return table === undefined ? verb : `${verb} ${table}`;
}

export function tally(calls: readonly SqlCall[]): Tally {
  const byKind: Record<string, number> = {};
  for (const c of calls) byKind[c.kind] = (byKind[c.kind] ?? 0) + c.statements;
  return { statements: calls.reduce((n, c) => n + c.statements, 0), roundTrips: calls.length, byKind };
}

const READS = /^\s*(SELECT|SHOW|EXPLAIN|WITH|DESCRIBE)\b/i;

export class CountingPool {
  readonly calls: SqlCall[] = [];
  ended = false;
  readonly #answer: Answer;

  constructor(answer: Answer) {
    this.#answer = answer;
  }

  /** The calls made since `from` (an earlier `calls.length`). */
  since(from: number): SqlCall[] {
    return this.calls.slice(from);
  }

  async query(sql: string | { sql: string }, params: readonly unknown[] = []): Promise<[unknown, unknown]> {
    return this.#reply(typeof sql === 'string' ? sql : sql.sql, params);
  }

  async execute(sql: string | { sql: string }, params: readonly unknown[] = []): Promise<[unknown, unknown]> {
    return this.#reply(typeof sql === 'string' ? sql : sql.sql, params);
  }

  async getConnection(): Promise<CountingConnection> {
    return new CountingConnection(this);
  }

  /** Pool events (openPool listens for 'connection'): none are emitted. */
  on(): this {
    return this;
  }

  async end(): Promise<void> {
    this.ended = true;
  }

  /** Records one round trip and answers it. */
  record(sql: string, params: readonly unknown[]): void {
    this.calls.push({ sql, params, statements: countStatements(sql), kind: statementKind(sql) });
  }

  #reply(sql: string, params: readonly unknown[]): [unknown, unknown] {
    this.record(sql, params);
    const answer = this.#answer(sql, params);
    if (READS.test(sql)) return [answer ?? [], []];
    const bulk = Array.isArray(params[0]) && params[0].every(Array.isArray) ? params[0].length : 1;
    return [
      { fieldCount: 0, affectedRows: bulk, insertId: 0, info: '', serverStatus: 2, warningStatus: 0, changedRows: 0 },
      undefined,
    ];
  }
}

export class CountingConnection {
  readonly #pool: CountingPool;

  constructor(pool: CountingPool) {
    this.#pool = pool;
  }

  query(sql: string | { sql: string }, params?: readonly unknown[]): Promise<[unknown, unknown]> {
    return this.#pool.query(sql, params);
  }

  execute(sql: string | { sql: string }, params?: readonly unknown[]): Promise<[unknown, unknown]> {
    return this.#pool.execute(sql, params);
  }

  async beginTransaction(): Promise<void> {
    this.#pool.record('BEGIN', []);
  }

  async commit(): Promise<void> {
    this.#pool.record('COMMIT', []);
  }

  async rollback(): Promise<void> {
    this.#pool.record('ROLLBACK', []);
  }

  release(): void {}
}

export interface InstalledPools {
  /** Every pool opened since install, in order. */
  pools: CountingPool[];
  restore(): void;
}

/** Makes mysql2's createPool return counting pools answered by `answer`. */
export function installCountingPools(answer: Answer): InstalledPools {
  const driver = mysql as unknown as { createPool: unknown };
  const original = driver.createPool;
  const pools: CountingPool[] = [];
  driver.createPool = () => {
    const pool = new CountingPool(answer);
    pools.push(pool);
    return pool;
  };
  return { pools, restore: () => void (driver.createPool = original) };
}

export interface FakeSchema {
  /** The source table: integer keys 1..rows in column `key`, every one pending (text keys are not answered). */
  source: { table: string; key: string; rows: number };
  /**
   * Every table's columns as information_schema shows them (name -> data type); each table's first column is its NOT
   * NULL unique key.
   */
  tables: Record<string, Record<string, string>>;
}

const INT_TYPES = new Set(['int', 'bigint']);

/** Answers for a migrated ledger that knows nothing yet about a source of `rows` pending tasks. */
export function freshLedger(schema: FakeSchema): Answer {
  const migrations = readMigrations().map((f) => ({
    migration_name: f.name,
    checksum: f.checksum,
    finished_at: new Date(0),
    logs: null,
  }));
  const { source } = schema;
  const pendingAfter = (sql: string): number => Number(/s\.`\w+` > (\d+)/.exec(sql)?.[1] ?? 0);
  // Keys written to the user's result tables, so that the worker's read-back finds them.
  const written = new Map<string, Set<string>>();
  return (sql, params) => {
    const insert = /^INSERT INTO `(\w+)`/.exec(sql.trim());
    if (insert !== null && !insert[1]!.startsWith('sluice_') && Array.isArray(params[0])) {
      const keys = written.get(insert[1]!) ?? new Set<string>();
      for (const row of params[0] as unknown[][]) keys.add(String(row[0]));
      written.set(insert[1]!, keys);
    }
    if (/^SELECT 1$/.test(sql.trim())) return [{ 1: 1 }];
    if (sql.includes('@@max_allowed_packet')) return [{ p: 64 * 1024 * 1024 }];
    if (sql.includes('information_schema.tables')) return [{ 1: 1 }];
    if (sql.includes('FROM _sluice_migrations')) return migrations;
    if (sql.includes('FROM sluice_ledger')) return [{ id: '00000000-0000-4000-8000-00000000c0de' }];
    if (sql.includes('information_schema.columns')) {
      const cols = Object.entries(schema.tables[String(params[1])] ?? {});
      return cols.map(([name, type], i) => ({
        name,
        type,
        column_type: type,
        nullable: i === 0 ? 'NO' : 'YES',
        scale: INT_TYPES.has(type) ? 0 : null,
        charset: null,
        coll: null,
      }));
    }
    if (sql.includes('information_schema.statistics')) {
      const first = Object.keys(schema.tables[String(params[1])] ?? {})[0];
      return [{ name: 'PRIMARY', index_name: 'PRIMARY', col: first }];
    }
    if (sql.includes('information_schema.views')) return [];
    // A page of the pending anti-join (rowsAsArray): key text, dispatches, dead, then the selected columns.
    if (sql.includes('__sluice_key')) {
      const columns = [...(sql.split(/\bFROM\b/)[0] ?? '').matchAll(/s\.`(\w+)`/g)].map((m) => m[1]!).slice(1);
      const from = pendingAfter(sql);
      const n = Math.max(0, Math.min(Number(params[params.length - 1]), source.rows - from));
      return Array.from({ length: n }, (_, i) => [
        String(from + i + 1),
        0,
        0,
        ...columns.map((c) => `${c} of ${from + i + 1}`),
      ]);
    }
    // Which of these keys a table holds (task-state.ts keysIn): the source holds every key 1..rows; a result table
    // the keys written to it.
    const probed = /AS k FROM `(\w+)` s WHERE \S+ IN \(([^)]*)\)/.exec(sql);
    if (probed !== null) {
      const keys = probed[2]!.split(',').map((k) => k.trim());
      if (written.has(probed[1]!)) return keys.filter((k) => written.get(probed[1]!)!.has(k)).map((k) => ({ k }));
      if (probed[1] !== source.table) return [];
      return probed[2]!
        .split(',')
        .map(Number)
        .filter((k) => k >= 1 && k <= source.rows)
        .map((k) => ({ k: String(k) }));
    }
    return undefined;
  };
}
