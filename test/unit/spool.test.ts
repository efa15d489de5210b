// The spool contract on real files: durable segments, claims that are never shared, leases that expire
// and come back, unfinished items returned on release.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it, type TestContext } from 'node:test';
import { SpoolClaimer } from '../../src/spool/claim.js';
import { spoolDepth } from '../../src/spool/depth.js';
import { parseSegmentName, spoolPaths, type SpoolPaths } from '../../src/spool/layout.js';
import { decodeItems, encodeItems, encodeLines, type SpoolItem } from '../../src/spool/segment.js';
import { readFileSync } from 'node:fs';
import { SpoolWriter } from '../../src/spool/writer.js';
import { ROOT } from '../helpers/cli.js';

function items(partition: number, from: number, n: number): SpoolItem[] {
  return Array.from({ length: n }, (_, i) => ({
    partition,
    offset: String(from + i),
    task: {
      v: 1,
      pipeline: 'p',
      key: `k${from + i}`,
      payload: { i },
      attempt: 1,
      runId: 'r',
      producedAt: '2026-11-23T00:00:00.000Z',
    },
  }));
}

async function spool(t: TestContext, segments: number, perSegment = 10): Promise<{ paths: SpoolPaths; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-spool-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const paths = spoolPaths(dir, 'p');
  const writer = new SpoolWriter(paths, perSegment);
  await writer.open();
  await writer.writeItems(0, items(0, 0, segments * perSegment));
  return { paths, dir };
}

describe('spool', () => {
  it('writes segments of at most maxSegmentItems whose names carry count and size, and nothing in tmp/', async (t) => {
    const { paths } = await spool(t, 7, 10);
    const names = readdirSync(paths.ready);
    assert.equal(names.length, 7);
    for (const n of names) assert.equal(parseSegmentName(n)?.count, 10);
    assert.deepEqual(readdirSync(paths.tmp), []);
    const depth = await spoolDepth(paths);
    assert.equal(depth.items, 70);
    assert.ok(depth.bytes > 70 * 50);
  });

  it("writes a fetched message's own bytes into the line: the same segment text as encoding the item", async (t) => {
    const tasks = [
      {
        v: 1 as const,
        pipeline: 'p',
        key: 'Grüße 東京 🎉',
        payload: { body: 'a "quoted"\\ line\u2028' },
        attempt: 1,
        runId: 'r',
        producedAt: '',
      },
      { v: 1 as const, pipeline: 'p', key: 9007199254740991, payload: null, attempt: 2, runId: 'r', producedAt: '' },
    ];
    const items: SpoolItem[] = tasks.map((task, i) => ({
      partition: 3,
      offset: String(18446744073709551615n - BigInt(i)),
      task,
    }));
    const lines = items.map((i) => ({ offset: i.offset, task: Buffer.from(JSON.stringify(i.task), 'utf8') }));
    assert.equal(encodeLines(3, lines, 0, 2).toString('utf8'), encodeItems(items));
    assert.deepEqual(decodeItems(encodeLines(3, lines, 1, 2).toString('utf8')), [items[1]]);
    const dir = mkdtempSync(join(tmpdir(), 'sluice-spool-test-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const paths = spoolPaths(dir, 'p');
    const writer = new SpoolWriter(paths, 1);
    await writer.open();
    const { names } = await writer.writeLines(3, lines);
    assert.deepEqual(
      names.map((n) => parseSegmentName(n)?.firstOffset),
      items.map((i) => i.offset),
    );
    assert.deepEqual(
      names.flatMap((n) => decodeItems(readFileSync(join(paths.ready, n), 'utf8'))),
      items,
    );
  });

  it('never lets two claimers hold the same segment (50 concurrent claims in one process)', async (t) => {
    const { paths } = await spool(t, 40, 5);
    const claimers = Array.from({ length: 5 }, (_, i) => new SpoolClaimer(paths, `w${i}`, 60_000));
    const got = await Promise.all(Array.from({ length: 50 }, (_, i) => claimers[i % 5]!.claim()));
    const claimed = got.filter((c) => c !== null).map((c) => c.segment);
    assert.equal(claimed.length, 40);
    assert.equal(new Set(claimed).size, 40);
  });

  it('never lets two worker processes claim the same segment', async (t) => {
    const { dir } = await spool(t, 300, 2);
    const run = promisify(execFile);
    const outs = await Promise.all(
      ['a', 'b', 'c'].map((id) =>
        run(process.execPath, ['--import', 'tsx', join(ROOT, 'test/helpers/claim-worker.ts'), dir, 'p', id], {
          cwd: ROOT,
        }),
      ),
    );
    const perProcess = outs.map((o) =>
      o.stdout
        .trim()
        .split('\n')
        .filter((l) => l.length > 0),
    );
    const all = perProcess.flat();
    assert.equal(all.length, 300, 'every segment claimed');
    assert.equal(new Set(all).size, 300, 'no segment claimed twice');
    assert.ok(
      perProcess.filter((p) => p.length > 0).length >= 2,
      `work was shared: ${perProcess.map((p) => p.length).join('/')}`,
    );
  });

  it("returns a dead worker's segment once its lease expires; the dead worker's renew then fails", async (t) => {
    const { paths } = await spool(t, 1);
    let now = 1_000_000_000_000;
    const dead = new SpoolClaimer(paths, 'dead', 5_000, () => now);
    const alive = new SpoolClaimer(paths, 'alive', 5_000, () => now);
    const c = await dead.claim();
    assert.ok(c);
    assert.equal(await alive.claim(), null);
    now += 4_000;
    assert.equal(await alive.recoverExpired(), 0, 'not yet expired');
    assert.equal(await dead.renew(c), true, 'a live holder extends its lease (now until +9 s)');
    now += 3_000;
    assert.equal(await alive.recoverExpired(), 0, 'renewed: still held at +7 s');
    now += 3_000;
    assert.equal(await alive.recoverExpired(), 1);
    const again = await alive.claim();
    assert.equal(again?.segment, c.segment);
    assert.equal(await dead.renew(c), false, 'the lost claim cannot be renewed');
    assert.equal((await alive.read(again)).length, 10);
  });

  it('release returns only the unfinished items as a new ready segment', async (t) => {
    const { paths } = await spool(t, 1);
    const w = new SpoolClaimer(paths, 'w', 60_000);
    const c = (await w.claim())!;
    const all = await w.read(c);
    await w.release(c, all.slice(6));
    assert.deepEqual(readdirSync(paths.claimed), []);
    const c2 = (await w.claim())!;
    assert.deepEqual(
      (await w.read(c2)).map((i) => i.offset),
      ['6', '7', '8', '9'],
    );
    assert.equal(parseSegmentName(c2.segment)?.count, 4);
    await w.complete(c2);
    assert.equal((await spoolDepth(paths)).items, 0);
  });

  it('deletes temporary files a crashed writer left behind when it opens again', async (t) => {
    const { paths } = await spool(t, 1);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(paths.tmp, 'half-written.seg'), '{"partial":');
    await new SpoolWriter(paths, 10).open();
    assert.equal(existsSync(join(paths.tmp, 'half-written.seg')), false);
  });
});
