// npm run bench:fetch — the fetcher's durable spooling rate against kafkajs consuming the same topic and
// writing nothing, and its peak RSS with a 100k and a 1M backlog.
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { median, report, REPEATS, variant, type Result } from './lib.js';

const brokers = (process.env.SLUICE_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const RATE_N = Number(process.env.BENCH_FETCH_MESSAGES ?? 500_000);
const SMALL = 100_000;
const BIG = Number(process.env.BENCH_FETCH_BIG ?? 1_000_000);

async function fill(n: number): Promise<string> {
  const kafka = new Kafka({ clientId: 'bench-fill', brokers, logLevel: logLevel.NOTHING });
  const topic = `bench-fetch-${randomUUID().slice(0, 8)}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 6 }], waitForLeaders: true });
  await admin.disconnect();
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const filler = 'x'.repeat(360);
  const t0 = performance.now();
  for (let i = 0; i < n; i += 2000) {
    const messages = [];
    for (let k = i; k < Math.min(n, i + 2000); k++) {
      messages.push({
        key: String(k),
        value:
          `{"v":1,"pipeline":"benchfetch","key":${k},"payload":{"body":"` +
          `${filler}"},"attempt":1,"runId":"bench","producedAt":"2026-11-23T00:00:00.000Z"}`,
      });
    }
    await producer.send({ topic, acks: 1, messages });
  }
  await producer.disconnect();
  console.error(
    `  filled ${topic} with ${n} messages of ~500 bytes (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
  return topic;
}

const fetchVariant = (args: string[]): Promise<Result> => variant('bench/fetch-worker.ts', args);

async function main(): Promise<void> {
  console.error(`bench:fetch on ${cpus().length} cores, node ${process.version}`);
  const spool = mkdtempSync(join(tmpdir(), 'sluice-bench-spool-'));
  const clean = (): void => rmSync(spool, { recursive: true, force: true });
  try {
    const rateTopic = await fill(RATE_N);
    const raw = await median(REPEATS, () => fetchVariant(['raw', rateTopic, String(RATE_N)]));
    const sluice = await median(REPEATS, () => fetchVariant(['sluice', rateTopic, String(RATE_N), spool]), clean);
    const smallTopic = await fill(SMALL);
    clean();
    const small = await fetchVariant(['sluice', smallTopic, String(SMALL), spool]);
    clean();
    const bigTopic = await fill(BIG);
    const big = await fetchVariant(['sluice', bigTopic, String(BIG), spool]);
    clean();

    const checks = [
      {
        target: '>= 50% of kafkajs consuming alone, with full durability',
        show: `${Math.round((100 * sluice.rate) / raw.rate)}%`,
        pass: sluice.rate >= 0.5 * raw.rate,
      },
      {
        target: 'peak RSS < 256 MB',
        show: `${Math.max(sluice.peakRssMb, small.peakRssMb, big.peakRssMb)} MB`,
        pass: Math.max(sluice.peakRssMb, small.peakRssMb, big.peakRssMb) < 256,
      },
      {
        target: `peak RSS the same for a ${SMALL / 1000}k and a ${BIG / 1000}k backlog`,
        show: `${small.peakRssMb} MB -> ${big.peakRssMb} MB`,
        pass: big.peakRssMb <= small.peakRssMb * 1.15,
      },
    ];
    report(
      'fetch',
      `Median of ${REPEATS} runs where several are shown (all runs' items/s in brackets). Rates run ` +
        `from the first batch to the last message.`,
      'items',
      [
        [`sluice fetch -> durable spool, ${RATE_N / 1000}k messages, 6 partitions`, sluice],
        ['kafkajs consuming the same topic, writing nothing', raw],
        [`sluice fetch, ${SMALL / 1000}k backlog`, small],
        [`sluice fetch, ${BIG / 1000}k backlog`, big],
      ],
      checks,
    );
  } finally {
    clean();
  }
}

await main();
