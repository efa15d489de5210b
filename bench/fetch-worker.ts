// One fetch benchmark variant in its own process. Prints one JSON line.
//   sluice <topic> <count> <spoolDir>   sluice's fetcher: durable segments, commits after fsync
//   raw    <topic> <count>              kafkajs consuming the same topic, writing nothing
// Rates are measured from the first batch to the last message (group join time excluded for both).
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { defaults, mergeLayers } from '../src/config/config.js';
import { validateConfig } from '../src/config/validate.js';
import { silentLogger } from '../src/core/logger.js';
import { startFetcher } from '../src/fetcher/fetcher.js';
import { spoolPaths } from '../src/spool/layout.js';
import { mkdirSync, writeFileSync } from 'node:fs';

const [mode, topic = '', countArg, spoolDir = ''] = process.argv.slice(2);
const count = Number(countArg);
const brokers = (process.env.SLUICE_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const emit = (o: Record<string, unknown>): void =>
  console.log(JSON.stringify({ mode, ...o, peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024) }));

async function sluice(): Promise<void> {
  const config = validateConfig(
    mergeLayers(structuredClone(defaults), {
      database: { url: 'mysql://root@127.0.0.1:1/unused', connectTimeoutMs: 200 },
      kafka: { brokers },
      fetcher: { groupId: `bench-${randomUUID()}` },
      // Backpressure off: the whole backlog goes to disk, so memory cannot hide behind a pause.
      spool: { dir: spoolDir, highWaterItems: 100_000_000, lowWaterItems: 0, highWaterBytes: 1e12, lowWaterBytes: 0 },
      pipelines: { benchfetch: { topic, partitions: 6, source: { table: 'unused', key: 'id', columns: [] } } },
    }),
  );
  // No database here: the spool says whose ledger it fetches for, as one that fetched before would.
  const root = spoolPaths(spoolDir, 'benchfetch').root;
  mkdirSync(root, { recursive: true });
  writeFileSync(`${root}/ledger`, `bench-${randomUUID()}\n`);
  let first = 0;
  let last = 0;
  const f = await startFetcher({
    config,
    pipeline: 'benchfetch',
    log: silentLogger(),
    onBatch: () => {
      if (first === 0) first = performance.now();
      last = performance.now();
    },
  });
  while (f.stats().spooled < count) await new Promise((r) => setTimeout(r, 20));
  const s = await f.stop();
  const seconds = (last - first) / 1000;
  emit({ tasks: s.spooled, seconds, rate: s.spooled / seconds, segments: s.segments });
}

async function raw(): Promise<void> {
  const consumer = new Kafka({ clientId: 'bench', brokers, logLevel: logLevel.NOTHING }).consumer({
    groupId: `bench-raw-${randomUUID()}`,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let n = 0;
  let first = 0;
  let last = 0;
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachBatch: ({ batch }) => {
        if (first === 0) first = performance.now();
        n += batch.messages.length;
        last = performance.now();
        if (n >= count) resolve();
        return Promise.resolve();
      },
    });
  });
  await consumer.disconnect();
  const seconds = (last - first) / 1000;
  emit({ tasks: n, seconds, rate: n / seconds });
}

await (mode === 'sluice' ? sluice() : raw());
