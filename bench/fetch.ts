// npm run bench:fetch — the fetcher's durable spooling rate against kafkajs consuming the same topic and
// writing nothing, and its peak RSS with a 100k and a 1M backlog.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, Partitioners } from 'kafkajs';

const run = promisify(execFile);
const brokers = (process.env.SLUICE_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const RATE_N = Number(process.env.BENCH_FETCH_MESSAGES ?? 500_000);
const SMALL = 100_000;
const BIG = Number(process.env.BENCH_FETCH_BIG ?? 1_000_000);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);

interface Result {
  mode: string;
  tasks: number;
  seconds: number;
  rate: number;
  peakRssMb: number;
  runs?: number[];
}

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
      messages.push({ key: String(k), value: `{"v":1,"pipeline":"benchfetch","key":${k},"payload":{"body":"${filler}"},"attempt":1,"runId":"bench","producedAt":"2026-11-23T00:00:00.000Z"}` });
    }
    await producer.send({ topic, acks: 1, messages });
  }
  await producer.disconnect();
  console.error(`  filled ${topic} with ${n} messages of ~500 bytes (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  return topic;
}

async function variant(args: string[]): Promise<Result> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'bench/fetch-worker.ts', ...args], { maxBuffer: 1 << 20 });
  const r = JSON.parse(stdout.trim().split('\n').pop()!) as Result;
  console.error(`  ${args[0]} ${args[2]}: ${r.tasks} in ${r.seconds.toFixed(2)} s = ${Math.round(r.rate)}/s, peak RSS ${r.peakRssMb} MB`);
  return r;
}

async function median(runs: number, make: () => string[], cleanup: () => void = () => {}): Promise<Result> {
  const rs: Result[] = [];
  for (let i = 0; i < runs; i++) {
    rs.push(await variant(make()));
    cleanup();
  }
  rs.sort((a, b) => a.rate - b.rate);
  return { ...rs[Math.floor(rs.length / 2)]!, peakRssMb: Math.max(...rs.map((r) => r.peakRssMb)), runs: rs.map((r) => Math.round(r.rate)) };
}

async function main(): Promise<void> {
  console.error(`bench:fetch on ${cpus().length} cores, node ${process.version}`);
  const spool = mkdtempSync(join(tmpdir(), 'sluice-bench-spool-'));
  const clean = (): void => rmSync(spool, { recursive: true, force: true });
  try {
    const rateTopic = await fill(RATE_N);
    const raw = await median(REPEATS, () => ['raw', rateTopic, String(RATE_N)]);
    const sluice = await median(REPEATS, () => ['sluice', rateTopic, String(RATE_N), spool], clean);
    const smallTopic = await fill(SMALL);
    const small = await variant(['sluice', smallTopic, String(SMALL), spool]);
    clean();
    const bigTopic = await fill(BIG);
    const big = await variant(['sluice', bigTopic, String(BIG), spool]);
    clean();

    const checks = [
      { target: '>= 50% of kafkajs consuming alone, with full durability', show: `${Math.round((100 * sluice.rate) / raw.rate)}%`, pass: sluice.rate >= 0.5 * raw.rate },
      { target: 'peak RSS < 256 MB', show: `${Math.max(sluice.peakRssMb, small.peakRssMb, big.peakRssMb)} MB`, pass: Math.max(sluice.peakRssMb, small.peakRssMb, big.peakRssMb) < 256 },
      { target: `peak RSS the same for a ${SMALL / 1000}k and a ${BIG / 1000}k backlog`, show: `${small.peakRssMb} MB -> ${big.peakRssMb} MB`, pass: big.peakRssMb <= small.peakRssMb * 1.15 },
    ];
    const rows: Array<[string, Result]> = [
      [`sluice fetch -> durable spool, ${RATE_N / 1000}k messages, 6 partitions`, sluice],
      ['kafkajs consuming the same topic, writing nothing', raw],
      [`sluice fetch, ${SMALL / 1000}k backlog`, small],
      [`sluice fetch, ${BIG / 1000}k backlog`, big],
    ];
    const md = [
      `### fetch (${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores, node ${process.version})`,
      '',
      `Median of ${REPEATS} runs where several are shown (all runs' items/s in brackets). Rates run from the first batch to the last message.`,
      '',
      '| variant | items | seconds | items/s | peak RSS MB |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...rows.map(([n, r]) => `| ${n} | ${r.tasks} | ${r.seconds.toFixed(2)} | ${Math.round(r.rate)}${r.runs ? ` [${r.runs.join(', ')}]` : ''} | ${r.peakRssMb} |`),
      '',
      '| target | result | met |',
      '| --- | --- | --- |',
      ...checks.map((c) => `| ${c.target} | ${c.show} | ${c.pass ? 'yes' : 'NO'} |`),
    ].join('\n');
    console.log(md);
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/fetch.md', `${md}\n`);
    writeFileSync('bench/results/fetch.json', JSON.stringify({ date: new Date().toISOString(), rows: rows.map(([name, r]) => ({ name, ...r })), checks }, null, 2));
  } finally {
    clean();
  }
}

await main();
