// A fresh, randomly named database per test file, dropped in teardown.
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import mysql from 'mysql2/promise';
import { defaults, type DatabaseConfig } from '../../src/config/config.js';
import { withDatabase } from '../../src/db/database-url.js';

/** The server tests run against. Override with SLUICE_TEST_DATABASE_URL (any database name). */
export const SERVER_URL = process.env.SLUICE_TEST_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/mysql';

export function randomName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

export function dbConfig(url: string): DatabaseConfig {
  return { ...defaults.database, url };
}

async function serverQuery(sql: string): Promise<void> {
  const conn = await mysql.createConnection(withDatabase(SERVER_URL, 'mysql'));
  try {
    await conn.query(sql);
  } finally {
    await conn.end();
  }
}

/**
 * A database name (not created: the migration runner creates it) that is dropped after the test.
 * Pass `create: true` to get it created empty.
 */
export async function testDatabase(
  t: TestContext | { after: (fn: () => Promise<void>) => void },
  opts: { create?: boolean } = {},
): Promise<string> {
  const name = randomName('sluice_test');
  if (opts.create === true) await serverQuery(`CREATE DATABASE \`${name}\``);
  t.after(async () => {
    await serverQuery(`DROP DATABASE IF EXISTS \`${name}\``);
  });
  return withDatabase(SERVER_URL, name);
}

/**
 * A source table `name` (id BIGINT PRIMARY KEY) holding ids 1..rows: workers run only tasks whose key has a
 * source row, so tests that spool or publish keys 1..n need one.
 */
export async function createIntSource(
  conn: { query: (sql: string) => Promise<unknown> },
  name: string,
  rows: number,
): Promise<void> {
  await conn.query(`CREATE TABLE IF NOT EXISTS \`${name}\` (id BIGINT PRIMARY KEY)`);
  if (rows > 0) await conn.query(`INSERT IGNORE INTO \`${name}\` SELECT seq FROM seq_1_to_${rows}`);
}
