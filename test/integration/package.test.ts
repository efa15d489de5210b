// The package as a user gets it: `npm pack`, the tarball installed into a fresh project with npm, a typed
// config there for a table of the project's own, type-checked under strict flags, then the installed bin
// (`npx sluice ...`) runs the job to `status --check` and stops on SIGTERM like under a process manager.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import mysql, { type Connection } from 'mysql2/promise';
import { ROOT } from '../helpers/cli.js';
import { randomName, testDatabase } from '../helpers/db.js';
import { fileTeardown } from '../helpers/fixtures.js';
import { BROKERS, ensureKafka } from '../helpers/kafka.js';
import { waitFor } from '../helpers/spool.js';

const exec = promisify(execFile);
let dir: string;
let project: string;
let url: string;
let db: Connection;
let env: Record<string, string>;
/** The pipeline of the second test, run again by the third. */
let name = '';

/** Pids of every process whose command line mentions the project folder (none must be left). */
function processesOf(folder: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(folder)) pids.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The `node .../bin/sluice` process under an `npx sluice ...` (npx runs it through `sh -c`). */
async function binUnder(pid: number): Promise<number> {
  let found: number | undefined;
  await waitFor(
    'the sluice bin under npx',
    () => {
      const stack = [pid];
      while (stack.length > 0) {
        const p = stack.pop()!;
        for (const c of childrenOf(p)) {
          const cmd = readFileSync(`/proc/${c}/cmdline`, 'utf8');
          if (cmd.startsWith('node') && cmd.includes('.bin/sluice')) found = c;
          stack.push(c);
        }
      }
      return found !== undefined;
    },
    20_000,
  );
  return found!;
}

interface Started {
  child: ChildProcess;
  exited: Promise<number | null>;
  out: () => string;
  err: () => string;
}

function start(args: string[], viaNpx = true): Started {
  const child = viaNpx
    ? spawn('npx', ['--no-install', 'sluice', ...args], { cwd: project, env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(join(project, 'node_modules', '.bin', 'sluice'), args, {
        cwd: project,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code, signal) => r(signal === null ? code : null)),
  );
  return { child, exited, out: () => out, err: () => err };
}

async function sluice(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec('npx', ['--no-install', 'sluice', ...args], { cwd: project, env });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

before(async () => {
  await ensureKafka();
  url = await testDatabase(file, { create: true });
  db = await mysql.createConnection(url);
  dir = mkdtempSync(join(tmpdir(), 'sluice-package-'));
  project = join(dir, 'user-app');
  // Plain npm, as a user runs it: nothing of this repository's environment (npm_* variables) leaks in.
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_')));
  const { stdout } = await exec('npm', ['pack', '--silent', '--pack-destination', dir], {
    cwd: ROOT,
    env: clean,
    maxBuffer: 64 * 1024 * 1024,
  });
  const tarball = join(dir, stdout.trim().split('\n').pop()!);
  await exec('mkdir', ['-p', project]);
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'user-app', version: '1.0.0', private: true, type: 'module' }),
  );
  await exec(
    'npm',
    ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball, 'typescript@5.9', '@types/node@20'],
    { cwd: project, env: clean, maxBuffer: 64 * 1024 * 1024 },
  );
  env = Object.fromEntries(
    Object.entries({
      ...clean,
      DATABASE_URL: url,
      SLUICE_KAFKA_BROKERS: BROKERS.join(','),
      SLUICE_LOG_PRETTY: 'false',
    }).filter((e): e is [string, string] => e[1] !== undefined),
  );
});
after(async () => {
  for (const pid of processesOf(project ?? '/nonexistent')) process.kill(pid, 'SIGKILL');
  await db?.end();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});
const file = fileTeardown();

describe('sluice installed from its packed tarball into a fresh project', () => {
  it('init writes a config for the table that passes doctor once the table exists; it never overwrites', async () => {
    const init = await sluice(['init', '--table', 'items', '--key', 'id', '--columns', 'title', '--scripts']);
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /wrote .*sluice\.config\.ts \(pipeline items on table items\)/);
    assert.match(init.stdout, /npx sluice migrate/);
    const pkg = JSON.parse(readFileSync(join(project, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts['sluice:work'], 'sluice work --pipeline items');
    assert.equal((await sluice(['init', '--table', 'items'])).code, 2, 'a second init refuses to overwrite');
    await db.query('CREATE TABLE items (id INT PRIMARY KEY, title VARCHAR(100))');
    const noTables = await sluice(['doctor', '--pipeline', 'items']);
    assert.equal(noTables.code, 4, noTables.stderr);
    assert.match(noTables.stderr, /— run: npx sluice migrate$/m, 'the hint names the command the user has');
    assert.equal((await sluice(['migrate'])).code, 0);
    const doctor = await sluice(['doctor', '--pipeline', 'items']);
    assert.equal(doctor.code, 0, doctor.stderr);
    assert.match(doctor.stdout, /ok {2}pipeline {4}items: source items \(int key id\)/);
  });

  it(
    'type-checks a two-stage config under strict flags, imports from plain ' + 'node, and runs to status --check',
    async () => {
      name = randomName('docs').replace(/_/g, '-');
      await db.query('CREATE TABLE user_docs (doc_id BIGINT PRIMARY KEY, body VARCHAR(200) NOT NULL)');
      await db.query("INSERT INTO user_docs SELECT seq, CONCAT('text of ', seq) FROM seq_1_to_300");
      writeFileSync(
        join(project, 'sluice.config.ts'),
        `import { defineConfig, NonRetriableError, pipeline } from 'sluice';

interface Doc { body: string }

const stages = pipeline<Doc>()
  .stage('words', async (doc, ctx) => {
    if (ctx.signal.aborted) throw new NonRetriableError('aborted');
    return doc.body.split(' ');
  }, { concurrency: 4, timeoutMs: 5_000 })
  .stage('count', (words, ctx) => ({ words: words.length, first: ` +
          `ctx.outputs.words[0] ?? '' }))
  .build();

export default ` +
          `defineConfig({
  spool: { dir: './spool', leaseMs: 5_000 },
  worker: { ` +
          `pollMs: 20, shutdownGraceMs: 2_000 },
  fetcher: { ` +
          `groupId: ${JSON.stringify(randomName('g'))} },
  ` +
          `pipelines: {
    ${JSON.stringify(name)}: ` +
          `{ topic: ${JSON.stringify(randomName('sluice-pkg'))}, partitions: 2, ` +
          `source: { table: 'user_docs', key: 'doc_id', columns: ` +
          `['body'] }, stages },
  },
});
`,
      );
      writeFileSync(
        join(project, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            target: 'ES2022',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            strict: true,
            exactOptionalPropertyTypes: true,
            noUncheckedIndexedAccess: true,
            skipLibCheck: false,
            noEmit: true,
            types: ['node'],
          },
          include: ['sluice.config.ts'],
        }),
      );
      await exec(join(project, 'node_modules', '.bin', 'tsc'), ['--noEmit', '-p', project], { cwd: project });
      const imported = await exec(
        process.execPath,
        ['-e', "import('sluice').then((m) => console.log(typeof m.defineConfig, typeof m.pipeline))"],
        { cwd: project },
      );
      assert.equal(imported.stdout.trim(), 'function function');

      const produced = await sluice(['produce', '--pipeline', name]);
      assert.equal(produced.code, 0, produced.stderr);
      assert.match(produced.stdout, /published +300/);
      const fetch = start(['fetch', '--pipeline', name]);
      const work = start(['work', '--pipeline', name]);
      await waitFor(
        'status --check to pass',
        async () => (await sluice(['status', '--pipeline', name, '--check'])).code === 0,
        90_000,
      );

      // What a process manager does: SIGTERM to the process it started. The bin is one node process; npx
      // runs it under `sh -c`, so the worker's own pid gets the signal, and npx passes its exit code on.
      const bin = await binUnder(work.child.pid!);
      process.kill(bin, 'SIGTERM');
      assert.equal(await work.exited, 0, work.err());
      assert.match(work.out(), new RegExp(`^work ${name}: done 300,`, 'm'));
      // SIGTERM to npx itself kills only its shell: sluice sees its parent go, drains and exits anyway.
      const fetchBin = await binUnder(fetch.child.pid!);
      fetch.child.kill('SIGTERM');
      await fetch.exited;
      await waitFor('the orphaned fetcher to drain and exit', () => !processesOf(project).includes(fetchBin), 20_000);
      assert.match(fetch.err(), /"msg":"fetcher stopped"/);
      assert.deepEqual(processesOf(project), [], 'no process of the run is left');
      const [[r]] = await db.query<mysql.RowDataPacket[]>(
        'SELECT COUNT(*) AS n FROM sluice_results WHERE pipeline = ?',
        [name],
      );
      assert.equal(Number(r?.n), 300);
    },
  );

  it(
    'under a process manager: run started as the bin itself drains on SIGTERM ' +
      'and exits 0; a second SIGTERM forces',
    async () => {
      assert.notEqual(name, '', 'runs after the test that sets up the pipeline');
      const run = start(['run', '--pipeline', name], false);
      await waitFor('run to start', () => run.err().includes('worker started'), 30_000);
      run.child.kill('SIGTERM');
      assert.equal(await run.exited, 0, run.err());
      // A stage that ignores its signal: the first SIGTERM waits for it, the second one forces the exit.
      await db.query('INSERT INTO user_docs VALUES (301, ?)', ['x '.repeat(10)]);
      writeFileSync(
        join(project, 'hang.config.ts'),
        readFileSync(join(project, 'sluice.config.ts'), 'utf8')
          .replace("return doc.body.split(' ');", 'await new Promise(() => {}); return [] as string[];')
          .replace('shutdownGraceMs: 2_000', 'shutdownGraceMs: 60_000'),
      );
      assert.equal((await sluice(['produce', '--pipeline', name])).code, 0);
      const hung = start(['run', '--pipeline', name, '--config', 'hang.config.ts'], false);
      await waitFor('the stage to hang', () => hung.err().includes('worker started'), 30_000);
      await new Promise((r) => setTimeout(r, 2000));
      hung.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 500));
      const t0 = performance.now();
      hung.child.kill('SIGTERM');
      const code = await hung.exited;
      assert.ok(performance.now() - t0 < 5000, 'the second signal forces the exit within seconds');
      assert.equal(code, 130, 'a forced stop exits 130 (interrupted)');
      assert.deepEqual(processesOf(project), []);
    },
  );
});
