import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchSender, messageSize, type OutgoingMessage } from '../../src/producer/batch-sender.js';

const msg = (key: string, bytes: number): OutgoingMessage => {
  const value = Buffer.from('v'.repeat(bytes - messageSize(key, '')));
  return { key, value, size: messageSize(key, value), keyText: key, quarantined: false };
};

describe('BatchSender', () => {
  it('closes a batch when the next message would pass the byte limit', async () => {
    const sent: number[][] = [];
    const sender = new BatchSender({
      maxBytes: 1000,
      flushMs: 60_000,
      send: async (b) => void sent.push(b.map((m) => m.size)),
    });
    for (let i = 0; i < 7; i++) await sender.add(msg(`k${i}`, 300));
    await sender.flush();
    assert.deepEqual(sent, [[300, 300, 300], [300, 300, 300], [300]]);
  });

  it('flushes a batch the flush interval after its first message, full or not', async () => {
    const sent: string[][] = [];
    const sender = new BatchSender({
      maxBytes: 1_000_000,
      flushMs: 30,
      send: async (b) => void sent.push(b.map((m) => m.key)),
    });
    void sender.add(msg('a', 100));
    void sender.add(msg('b', 100));
    await new Promise((r) => setTimeout(r, 80));
    assert.deepEqual(sent, [['a', 'b']]);
    void sender.add(msg('c', 100));
    await sender.flush();
    assert.deepEqual(sent, [['a', 'b'], ['c']]);
  });

  it('lets the caller build the next batch while one is sending, but not two ahead', async () => {
    const started: string[] = [];
    const finish: Array<() => void> = [];
    const sender = new BatchSender({
      maxBytes: 200,
      flushMs: 60_000,
      send: (b) => {
        started.push(b[0]!.key);
        return new Promise<void>((r) => finish.push(r));
      },
    });
    assert.equal(sender.add(msg('k0', 150)), undefined);
    const first = sender.add(msg('k1', 150));
    assert.ok(first !== undefined, 'closing batch k0 returns the (empty) chain before it');
    await first;
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(started, ['k0']);
    const second = sender.add(msg('k2', 150));
    let secondDone = false;
    void second!.then(() => (secondDone = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(secondDone, false, 'k1 is queued behind k0: the caller must wait for k0');
    finish[0]!();
    await second;
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(started, ['k0', 'k1']);
    finish[1]!();
    const last = sender.flush();
    await new Promise((r) => setImmediate(r));
    finish[2]!();
    await last;
    assert.deepEqual(started, ['k0', 'k1', 'k2']);
  });

  it('sends one batch at a time, in order', async () => {
    let inFlight = 0;
    let most = 0;
    const order: string[] = [];
    const sender = new BatchSender({
      maxBytes: 200,
      flushMs: 60_000,
      send: async (b) => {
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setTimeout(r, 5));
        order.push(b[0]!.key);
        inFlight--;
      },
    });
    for (let i = 0; i < 5; i++) void sender.add(msg(`k${i}`, 150));
    await sender.flush();
    assert.equal(most, 1);
    assert.deepEqual(order, ['k0', 'k1', 'k2', 'k3', 'k4']);
  });

  it('after a failed send, every later flush fails with that error: nothing is silently dropped', async () => {
    const sender = new BatchSender({
      maxBytes: 200,
      flushMs: 60_000,
      send: async (b) => {
        if (b[0]!.key === 'k1') throw new Error('broker gone');
      },
    });
    void sender.add(msg('k0', 150));
    void sender.add(msg('k1', 150));
    void sender.add(msg('k2', 150));
    const closed = sender.add(msg('k3', 150));
    await assert.rejects(closed!, /broker gone/);
    void sender.add(msg('k4', 150));
    await assert.rejects(sender.flush(), /broker gone/);
  });
});
