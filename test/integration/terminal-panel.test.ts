// The terminal view under a pseudo-terminal (`script`): `work` keeps a panel at the bottom, redrawn in place,
// and prints each log record as one line above it; `--no-panel` turns it off; outside a terminal the logs
// stay JSON lines. The panel's line formatting is also checked directly.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { formatRecord, TerminalPanel } from '../../src/commands/terminal-panel.js';
import { spoolPaths } from '../../src/spool/layout.js';
import { SpoolWriter } from '../../src/spool/writer.js';
import { cliEnv, makeConfig, onTeardown, ROOT, tempDir } from '../helpers/fixtures.js';

const run = promisify(execFile);

async function workInTerminal(t: TestContext, extra: string[]): Promise<string> {
  const { url, spoolDir } = await makeConfig(t);
  const db = await mysql.createConnection(url);
  onTeardown(t, () => db.end());
  await db.query('CREATE TABLE docs (id INT PRIMARY KEY)');
  await db.query('INSERT INTO docs SELECT seq FROM seq_1_to_300');
  const dir = tempDir(t, 'sluice-panel-');
  const config = join(dir, 'sluice.config.ts');
  writeFileSync(
    config,
    `export default { spool: { dir: ${JSON.stringify(spoolDir)} }, worker: ` +
      `{ pollMs: 20 }, pipelines: { p: { topic: 't', source: { ` +
      `table: 'docs', key: 'id', columns: [] },
    stages: [{ name: 'slow', concurrency: 4, run: async () => new ` +
      `Promise((r) => setTimeout(r, 10)) }] } } };\n`,
  );
  const writer = new SpoolWriter(spoolPaths(spoolDir, 'p'), 50);
  await writer.open();
  await writer.writeItems(
    0,
    Array.from({ length: 300 }, (_, i) => ({
      partition: 0,
      offset: String(i),
      task: { v: 1, pipeline: 'p', key: i + 1, payload: {}, attempt: 1, runId: 'r', producedAt: '' },
    })),
  );
  const cli =
    `${process.execPath} ` +
    `--import ${import.meta.resolve('tsx')} ${join(ROOT, 'src/cli.ts')} work ` +
    `--pipeline p --exit-when-idle ${extra.join(' ')}`;
  // `script` runs the command under a pseudo-terminal and copies everything it shows to stdout.
  const env = {
    ...cliEnv({ DATABASE_URL: url, SLUICE_CONFIG: config, SLUICE_LOG_LEVEL: 'info', COLUMNS: '120' }),
    SLUICE_LOG_PRETTY: 'auto',
  };
  try {
    return (await run('script', ['-qfec', cli, '/dev/null'], { env, timeout: 60_000, maxBuffer: 16 << 20 })).stdout;
  } catch (err) {
    throw new Error(
      `work exited ${String((err as { code?: unknown }).code)}:\n${String((err as { stdout?: unknown }).stdout)}`,
    );
  }
}

describe('the terminal panel', () => {
  it('in a terminal: log records one line each above a panel that is redrawn in place', async (t) => {
    const out = await workInTerminal(t, []);
    const plain = out.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
    assert.match(
      plain,
      /^\d\d:\d\d:\d\d\.\d{3} INFO  \[worker\] worker started {2}pipeline="p" workerId="[^"]+" spool=/m,
      'one line per record, its fields on it',
    );
    assert.doesNotMatch(plain, /^\s+pipeline: "p"$/m, 'no multi-line records');
    assert.ok((out.match(/\x1b\[J/g) ?? []).length >= 3, 'the panel was cleared and drawn again several times');
    assert.match(out, /\x1b\[\d+A\r\x1b\[J/, 'redrawn in place: the cursor goes back up over the panel');
    assert.match(plain, /stage slow +done +300 /, 'the panel counts the stage');
    assert.match(plain, /p: tasks done 300, quarantined 0, in flight 0/);
    assert.match(plain, /work p: done 300/);
  });

  it('--no-panel turns it off (the terminal gets pretty log records, no panel)', async (t) => {
    const out = await workInTerminal(t, ['--no-panel']);
    assert.doesNotMatch(out, /\x1b\[J/);
    assert.doesNotMatch(out, /stage slow +done/);
    assert.match(out.replace(/\x1b\[[0-9;]*[A-Za-z]/g, ''), /worker started/);
  });

  it('formats a record as one line and keeps the panel below what is written', () => {
    const line = formatRecord(
      JSON.stringify({
        level: 40,
        time: Date.UTC(2026, 10, 26, 9, 0, 0, 5),
        pid: 1,
        component: 'fetcher',
        msg: 'message quarantined',
        reason: 'not-json',
        detail: 'a\nb',
        err: { message: 'boom', stack: 'x\ny' },
      }),
    );
    assert.equal(
      line,
      '\x1b[33m09:00:00.005 WARN  [fetcher] message quarantined  reason="not-json" detail="a\\nb" err="boom"\x1b[0m',
    );
    let screen = '';
    const panel = new TerminalPanel({ write: (s) => (screen += s), columns: 100 }, 60_000);
    panel.setLines(['stage a done 1']);
    panel.write(`${JSON.stringify({ level: 30, time: 0, msg: 'one' })}\n`);
    panel.write(`${JSON.stringify({ level: 30, time: 0, msg: 'two' })}\n`);
    panel.close();
    assert.match(screen, /one\n─+\nstage a done 1\n\x1b\[2A\r\x1b\[J.*two\n─+\nstage a done 1\n/s);
  });
});
