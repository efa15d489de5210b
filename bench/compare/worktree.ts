// The side of a comparison that is not this checkout: a git ref checked out into a worktree of its own under
// .bench/worktrees/<sha>, installed once (npm ci) and kept, so a second compare against the same ref starts at
// once. Nothing of the ref's benchmark code is used: the harness drives its command line only.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const INSTALLED = '.sluice-bench-installed';

export interface Side {
  /** 'ref' or 'main': how the tables name it. */
  label: string;
  /** What it is: the ref as given and its short sha. */
  describe: string;
  /** Folder whose command line is run (its own node_modules beside it). */
  dir: string;
  /** Node's arguments before the command's: `--import tsx <dir>/src/cli.ts`, or the built `<dir>/dist/cli.js`. */
  entry: string[];
  /** How the side was run, for the table. */
  how: string;
}

const fromSource = (dir: string): Pick<Side, 'entry' | 'how'> => ({
  entry: ['--import', 'tsx', resolve(dir, 'src/cli.ts')],
  how: 'src/cli.ts through tsx',
});

/**
 * `installed`: the side as its package's bin runs it, as a user has it. A version whose bin is the built
 * dist/cli.js runs that (built here first: a stale build would measure other code); the release of
 * 2026-11-24, whose bin ran src/cli.ts through tsx, runs that way either way.
 */
async function entryOf(dir: string, installed: boolean): Promise<Pick<Side, 'entry' | 'how'>> {
  if (!installed) return fromSource(dir);
  const pkg = JSON.parse(readFileSync(resolve(dir, 'package.json'), 'utf8')) as { bin?: Record<string, string> };
  if (pkg.bin?.sluice !== './dist/cli.js') return fromSource(dir);
  await run('npm', ['run', '-s', 'build'], { cwd: dir, maxBuffer: 1 << 24 });
  return { entry: [resolve(dir, 'dist/cli.js')], how: 'dist/cli.js, built' };
}

async function git(args: string[], cwd = '.'): Promise<string> {
  return (await run('git', args, { cwd, maxBuffer: 1 << 24 })).stdout.trim();
}

/** This checkout, as it is now (uncommitted changes included: that is what a change is measured with). */
export async function thisCheckout(installed = false): Promise<Side> {
  const sha = await git(['rev-parse', '--short', 'HEAD']);
  // What is measured: the code and its dependencies (a new result file in bench/ is not a change of them).
  const dirty = (await git(['status', '--porcelain', '--', 'src', 'package.json', 'package-lock.json'])).length > 0;
  return {
    label: 'main',
    describe: `this checkout (${sha}${dirty ? ' + uncommitted changes' : ''})`,
    dir: resolve('.'),
    ...(await entryOf(resolve('.'), installed)),
  };
}

/** The ref's worktree, made and installed the first time it is asked for. */
export async function refWorktree(ref: string, log: (line: string) => void, installed = false): Promise<Side> {
  let sha: string;
  try {
    sha = await git(['rev-parse', '--verify', `${ref}^{commit}`]);
  } catch {
    throw new Error(
      `bench:compare: '${ref}' is not a commit here (git rev-parse failed); give a sha, a branch or a tag`,
    );
  }
  const dir = resolve('.bench/worktrees', sha);
  if (!existsSync(resolve(dir, 'package.json'))) {
    log(`checking out ${ref} (${sha.slice(0, 7)}) into ${dir}`);
    mkdirSync(resolve('.bench/worktrees'), { recursive: true });
    await git(['worktree', 'prune']);
    await git(['worktree', 'add', '--detach', '--force', dir, sha]);
  }
  if (!existsSync(resolve(dir, INSTALLED))) {
    log(`installing ${ref} (npm ci in its worktree, once)`);
    await run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, maxBuffer: 1 << 26 });
    writeFileSync(resolve(dir, INSTALLED), `${new Date().toISOString()}\n`);
  }
  return { label: 'ref', describe: `${ref} (${sha.slice(0, 7)})`, dir, ...(await entryOf(dir, installed)) };
}
