// The fetcher's parts with fake collaborators: a batch becomes durable before its offset is resolved, bad
// messages are quarantined with their reason, a stale batch is not resolved; the backpressure gate; the
// restart policy of a crashed consumer; and the envelope every side reads.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EachBatchPayload } from 'kafkajs';
import {
  encodeEnvelope,
  envelopeEncoder,
  envelopeKey,
  keyProblem,
  keyText,
  MAX_KEY_BYTES,
} from '../../src/core/envelope.js';
import { silentLogger } from '../../src/core/logger.js';
import { BackpressureGate } from '../../src/fetcher/backpressure.js';
import { BatchSpooler } from '../../src/fetcher/batch-spooler.js';
import { DiskGuard } from '../../src/fetcher/disk-guard.js';
import { pino } from 'pino';
import { onCrash, RestartCounter } from '../../src/fetcher/consumer.js';
import type { QuarantineEntry } from '../../src/spool/quarantine.js';
import { fakeClock } from '../helpers/fake-clock.js';

const good = (key: number) =>
  Buffer.from(encodeEnvelope({ v: 1, pipeline: 'p', key, payload: { key }, attempt: 1, runId: 'r', producedAt: '' }));

function batch(values: Array<Buffer | null>, opts: { staleAfterWrite?: boolean } = {}) {
  const events: string[] = [];
  let written = false;
  const payload = {
    batch: {
      topic: 't',
      partition: 2,
      messages: values.map((value, i) => ({ offset: String(100 + i), key: null, value })),
      offsetLag: () => '7',
    },
    resolveOffset: (o: string) => void events.push(`resolve ${o}`),
    heartbeat: async () => void events.push('heartbeat'),
    isStale: () => opts.staleAfterWrite === true && written,
  } as unknown as Pick<EachBatchPayload, 'batch' | 'resolveOffset' | 'heartbeat' | 'isStale'>;
  return { payload, events, markWritten: () => (written = true) };
}

function spooler(events: string[], markWritten: () => void, disk: { room?: boolean; writeFails?: string } = {}) {
  const quarantined: QuarantineEntry[] = [];
  const durable: unknown[] = [];
  const s = new BatchSpooler({
    pipeline: 'p',
    ledger: null,
    maxItemBytes: 1024,
    fetcherId: 'f',
    writeLines: async (_p, lines) => {
      events.push(
        `write ${lines.map((l) => (JSON.parse(Buffer.from(l.task).toString()) as { key: unknown }).key).join(',')}`,
      );
      if (disk.writeFails !== undefined)
        throw Object.assign(new Error(`${disk.writeFails}: no space left on device, write`), { code: disk.writeFails });
      markWritten();
      return { names: ['seg'], bytes: 10 };
    },
    quarantine: async (e) => {
      events.push(`quarantine ${e.reason}`);
      quarantined.push(e);
      return 'file.json';
    },
    recordBad: (rows) => void events.push(`record ${rows.length}`),
    room: async (bytes) => (events.push(`room for ${bytes}?`), disk.room ?? true),
    written: (bytes) => void events.push(`written ${bytes}`),
    diskFull: (err) => void events.push(`disk full ${err.code}`),
    onDurable: (b) => void durable.push(b),
    log: silentLogger(),
  });
  return { s, quarantined, durable };
}

describe('BatchSpooler', () => {
  it(
    'writes the good messages, quarantines the bad ones with their reason, ' + 'then resolves the last offset',
    async () => {
      const b = batch([good(1), Buffer.from('not json'), good(2), null, Buffer.alloc(2048, 'x')]);
      const { s, quarantined, durable } = spooler(b.events, b.markWritten);
      await s.spool(b.payload);
      const need = Number(/^room for (\d+)\?$/.exec(b.events[0]!)?.[1]);
      assert.ok(need > 2 * 100, `the room asked for covers the lines and the quarantine files: ${need}`);
      assert.deepEqual(b.events.slice(1), [
        'write 1,2',
        'quarantine not-json',
        'quarantine empty',
        'quarantine too-large',
        'record 3',
        `written ${need}`,
        'resolve 104',
        'heartbeat',
      ]);
      assert.deepEqual(
        quarantined.map((q) => [q.offset, q.source]),
        [
          ['101', 'fetcher'],
          ['103', 'fetcher'],
          ['104', 'fetcher'],
        ],
      );
      assert.deepEqual(durable, [
        { partition: 2, items: 2, bytes: 10, segments: ['seg'], quarantined: 3, resolved: '105' },
      ]);
      assert.deepEqual(
        [s.counters.spooled, s.counters.quarantined, s.counters.batches, s.counters.lag],
        [2, 3, 1, { 2: 7 }],
      );
    },
  );

  it(
    'does not resolve a batch whose partition was lost while it was written ' + '(the new owner fetches it again)',
    async () => {
      const b = batch([good(1)], { staleAfterWrite: true });
      const { s, durable } = spooler(b.events, b.markWritten);
      await s.spool(b.payload);
      assert.match(b.events[0]!, /^room for \d+\?$/);
      assert.deepEqual(b.events.slice(1, 2), ['write 1']);
      assert.deepEqual(durable, []);
    },
  );

  it(
    'a full disk before the write: nothing written, nothing resolved (fetched ' + 'again once the disk has room)',
    async () => {
      const b = batch([good(1), good(2)]);
      const { s, durable } = spooler(b.events, b.markWritten, { room: false });
      await s.spool(b.payload);
      assert.match(b.events.join(' | '), /^room for \d+\?$/);
      assert.deepEqual([durable, s.counters.batches], [[], 0]);
    },
  );

  it(
    'ENOSPC or EDQUOT during the write is the same pause: not thrown (kafkajs ' +
      'would restart the consumer), not resolved',
    async () => {
      for (const code of ['ENOSPC', 'EDQUOT']) {
        const b = batch([good(1)]);
        const { s, durable } = spooler(b.events, b.markWritten, { writeFails: code });
        await s.spool(b.payload);
        assert.match(b.events[0]!, /^room for \d+\?$/);
        assert.deepEqual(b.events.slice(1, 3), ['write 1', `disk full ${code}`]);
        assert.match(b.events[3]!, /^written \d+$/, 'the reservation ends');
        assert.deepEqual(durable, []);
      }
      const b = batch([good(1)]);
      const { s } = spooler(b.events, b.markWritten, { writeFails: 'EACCES' });
      await assert.rejects(s.spool(b.payload), /EACCES/, 'any other file-system error is not a full disk');
    },
  );
});

describe('DiskGuard', () => {
  it(
    'pauses when a write would leave less than minFreeBytes, warns once per ' +
      'episode, resumes with room for a whole fetch',
    async () => {
      const MiB = 1024 * 1024;
      let free = 100 * MiB;
      const events: string[] = [];
      const lines: Array<{ msg: string; level: number }> = [];
      const log = pino(
        { level: 'info' },
        { write: (l: string) => void lines.push(JSON.parse(l) as { msg: string; level: number }) },
      );
      const guard = new DiskGuard({
        dir: '/spool',
        minFreeBytes: 64 * MiB,
        batchBytes: 8 * MiB,
        log,
        free: async () => free,
        onFull: () => events.push('pause'),
        onRoom: () => events.push('resume'),
      });
      try {
        assert.equal(await guard.room(20 * MiB), true);
        assert.equal(
          await guard.room(20 * MiB),
          false,
          'a batch still being written keeps its 20 MiB: 100 - 20 - 20 is under 64',
        );
        assert.deepEqual(events, ['pause']);
        guard.written(20 * MiB);
        assert.equal(await guard.room(1), false, 'stays full until measured again');
        guard.failed(Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' }));
        free = 70 * MiB;
        await new Promise((r) => setTimeout(r, 700));
        assert.deepEqual(events, ['pause'], '70 MiB has no room for a whole fetch beyond the minimum (72 MiB)');
        free = 72 * MiB;
        await waitUntil(() => events.length === 2);
        assert.deepEqual(events, ['pause', 'resume']);
        assert.equal(await guard.room(1), true);
        guard.written(1);
        guard.failed(Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' }));
        assert.deepEqual(events, ['pause', 'resume', 'pause'], 'a write that failed anyway pauses at once');
        await waitUntil(() => lines.filter((l) => l.msg.startsWith('spool disk full')).length === 2);
        const warnings = lines.filter((l) => l.level === 40);
        assert.equal(warnings.length, 2, 'one warning per episode');
        assert.match(JSON.stringify(warnings[0]), /"freeMiB":100,"minFreeMiB":64,"resumeAtMiB":72,"dir":"\/spool"/);
        assert.equal(lines.filter((l) => l.level >= 50).length, 0, 'no error records');
      } finally {
        guard.close();
      }
    },
  );
});

async function waitUntil(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(ok(), 'condition not reached in 5 s');
}

describe('BackpressureGate and a full disk', () => {
  it('is paused while either reason holds, says which, and resumes only when both are gone', () => {
    const valve: string[] = [];
    const gate = new BackpressureGate(
      { highWaterItems: 100, lowWaterItems: 50, highWaterBytes: 10_000, lowWaterBytes: 5000 },
      { pause: () => valve.push('pause'), resume: () => valve.push('resume') },
      { items: 0, bytes: 0, readySegments: 0, claimedSegments: 0 },
      silentLogger(),
    );
    gate.hold('disk full');
    gate.added(200, 100, 1);
    assert.deepEqual([gate.state, gate.reason], ['paused', 'disk full']);
    gate.release('disk full');
    assert.deepEqual([gate.state, gate.reason], ['paused', 'high-water mark']);
    gate.apply({ items: 0, bytes: 0, readySegments: 0, claimedSegments: 0 });
    assert.deepEqual([gate.state, gate.reason], ['open', null]);
    assert.deepEqual(valve, ['pause', 'resume']);
    gate.close();
  });
});

describe('BackpressureGate', () => {
  it('pauses above either high-water mark and resumes only below both low-water marks', () => {
    const valve: string[] = [];
    const gate = new BackpressureGate(
      { highWaterItems: 100, lowWaterItems: 50, highWaterBytes: 10_000, lowWaterBytes: 5000 },
      { pause: () => valve.push('pause'), resume: () => valve.push('resume') },
      { items: 0, bytes: 0, readySegments: 0, claimedSegments: 0 },
      silentLogger(),
    );
    gate.added(99, 100, 1);
    assert.equal(gate.state, 'open');
    gate.added(1, 100, 1);
    assert.equal(gate.state, 'paused');
    gate.apply({ items: 40, bytes: 6000, readySegments: 1, claimedSegments: 0 });
    assert.equal(gate.state, 'paused', 'bytes still above their low-water mark');
    gate.apply({ items: 40, bytes: 4000, readySegments: 1, claimedSegments: 0 });
    assert.equal(gate.state, 'open');
    gate.apply({ items: 0, bytes: 20_000, readySegments: 1, claimedSegments: 0 });
    gate.close();
    assert.deepEqual(valve, ['pause', 'resume', 'pause']);
    assert.equal(gate.paused, true, 'closed while paused still says paused');
  });
});

describe('consumer restart policy', () => {
  it('waits twice as long per consecutive crash, up to 30 s, and gives up after maxRestarts', async () => {
    const clock = fakeClock();
    const counter = new RestartCounter();
    const answers: boolean[] = [];
    for (let i = 0; i < 8; i++)
      answers.push(
        await onCrash(
          counter,
          { maxRestarts: 7, restartBackoffMs: 1000 },
          silentLogger(),
          new Error('broker gone'),
          clock,
        ),
      );
    answers.push(
      await onCrash(
        counter,
        { maxRestarts: 7, restartBackoffMs: 1000 },
        silentLogger(),
        new Error('broker gone'),
        clock,
      ),
    );
    assert.deepEqual(clock.sleeps, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    assert.deepEqual(answers, [true, true, true, true, true, true, true, false, false]);
    assert.equal(counter.total, 9);
  });
});

describe('envelope', () => {
  it('writes fields in the documented order and carries keys as their canonical text', () => {
    assert.equal(
      encodeEnvelope({ v: 1, pipeline: 'p', key: 'a"b', payload: { x: 1 }, attempt: 2, runId: 'r', producedAt: 't' }),
      '{"v":1,"pipeline":"p","key":"a\\"b","payload":{"x":1},"attempt":2,"runId":"r","producedAt":"t"}',
    );
    assert.equal(envelopeKey('42', true), 42);
    assert.equal(
      envelopeKey('18446744073709551615', true),
      '18446744073709551615',
      'past 2^53 an integer key stays text',
    );
    assert.equal(envelopeKey('007', false), '007');
    assert.equal(keyText(42), '42');
    assert.equal(keyProblem(''), 'key is empty');
    assert.equal(keyProblem('é'.repeat(MAX_KEY_BYTES / 2)), null);
    assert.match(keyProblem('é'.repeat(MAX_KEY_BYTES / 2 + 1)) ?? '', /2050 bytes/);
  });

  it("the producer's per-page encoder writes what JSON.stringify writes of the envelope, ledger or not", () => {
    for (const ledger of [undefined, 'led"ger']) {
      const fixed = {
        v: 1 as const,
        pipeline: 'pipé',
        ...(ledger === undefined ? {} : { ledger }),
        runId: 'r\n1',
        producedAt: '2026-12-06T00:00:00.000Z',
      };
      const encode = envelopeEncoder(fixed);
      for (const [key, payload, attempt] of [
        [42, { t: 'Grüße 🎉', n: null }, 1],
        ['k"\\ 東', [1, 'x'], 3],
        [9007199254740991, undefined, 2],
      ] as const) {
        const e = {
          v: 1 as const,
          pipeline: fixed.pipeline,
          ...(ledger === undefined ? {} : { ledger }),
          key,
          payload: payload ?? null,
          attempt,
          runId: fixed.runId,
          producedAt: fixed.producedAt,
        };
        assert.equal(encode(key, payload, attempt), JSON.stringify(e));
        assert.equal(encodeEnvelope({ ...e, payload }), JSON.stringify(e));
      }
    }
  });
});
