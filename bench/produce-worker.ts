// One benchmark variant in its own process (so its peak RSS is its own). Prints one JSON line.
//   sluice   <table> <pipeline> [<key as JSON>]   sluice's producer, as `npm run produce` runs it
//   naive    <table> <samples>    OFFSET/LIMIT pages of 1,000 with NOT IN, publishing each page
//   antijoin <table> <pipeline>   the anti-join streamed alone, no Kafka
//   kafka    <count> <bytes>      kafkajs sending pre-built batches alone, no database
import { randomUUID } from 'node:crypto';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import mysqlCallbacks from 'mysql2';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { defaults, mergeLayers } from '../src/config/config.js';
import { validateConfig } from '../src/config/validate.js';
import { silentLogger } from '../src/core/logger.js';
import { produce } from '../src/producer/producer.js';

const [mode, a, b, c] = process.argv.slice(2);
const url = process.env.BENCH_DATABASE_URL!;
const brokers = (process.env.SLUICE_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const rssMb = (): number => Math.round(process.resourceUsage().maxRSS / 1024);
const emit = (o: Record<string, unknown>): void => console.log(JSON.stringify({ mode, ...o, peakRssMb: rssMb() }));

/** BENCH_TOPIC_PREFIX: the caller's prefix, so that it can sweep the topics a run leaves (bench:compare). */
async function newTopic(partitions = 6): Promise<{ kafka: Kafka; topic: string }> {
  const kafka = new Kafka({ clientId: 'sluice-bench', brokers, logLevel: logLevel.NOTHING });
  const topic = `${process.env.BENCH_TOPIC_PREFIX ?? 'sluice-bench'}-${randomUUID().slice(0, 8)}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  await admin.disconnect();
  return { kafka, topic };
}

async function sluice(table: string, pipeline: string, keyJson = '"id"'): Promise<void> {
  const topic = `sluice-bench-${randomUUID().slice(0, 8)}`;
  const key = JSON.parse(keyJson) as string | string[];
  const config = validateConfig(
    mergeLayers(structuredClone(defaults), {
      database: { url },
      kafka: { brokers },
      pipelines: { [pipeline]: { topic, partitions: 6, source: { table, key, columns: ['title', 'body'] } } },
    }),
  );
  const s = await produce({ config, pipeline, log: silentLogger() });
  emit({ tasks: s.published, seconds: s.seconds, rate: s.rate, batches: s.batches });
}

async function naive(table: string, samples: number): Promise<void> {
  const { kafka, topic } = await newTopic();
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const conn = await mysql.createConnection(url);
  const [[{ n }]] = (await conn.query('SELECT COUNT(*) AS n FROM naive_results')) as unknown as [[{ n: number }]];
  const [[{ total }]] = (await conn.query(`SELECT COUNT(*) AS total FROM ${table}`)) as unknown as [
    [{ total: number }],
  ];
  const pages = Math.ceil((Number(total) - Number(n)) / 1000);
  // Page k costs more the further it is: sample pages spread over the run and integrate a linear fit.
  const picks = Array.from({ length: samples }, (_, i) => Math.floor((i * (pages - 1)) / Math.max(1, samples - 1)));
  const points: Array<[number, number]> = [];
  for (const k of picks) {
    const t0 = performance.now();
    const [rows] = await conn.query<RowDataPacket[]>(
      `SELECT id, title, body FROM ${table} WHERE id NOT IN (SELECT task_key FROM naive_results) ORDER BY id LIMIT ` +
        `1000 OFFSET ${k * 1000}`,
    );
    await producer.send({ topic, messages: rows.map((r) => ({ key: String(r.id), value: JSON.stringify(r) })) });
    points.push([k, (performance.now() - t0) / 1000]);
  }
  const meanK = points.reduce((s, p) => s + p[0], 0) / points.length;
  const meanT = points.reduce((s, p) => s + p[1], 0) / points.length;
  const slope =
    points.reduce((s, p) => s + (p[0] - meanK) * (p[1] - meanT), 0) /
    Math.max(
      1e-9,
      points.reduce((s, p) => s + (p[0] - meanK) ** 2, 0),
    );
  const intercept = meanT - slope * meanK;
  let seconds = 0;
  for (let k = 0; k < pages; k++) seconds += Math.max(0, intercept + slope * k);
  emit({
    tasks: Number(total) - Number(n),
    seconds,
    rate: (Number(total) - Number(n)) / seconds,
    pagesMeasured: points.length,
    pages,
    firstPageS: points[0]?.[1],
    lastPageS: points[points.length - 1]?.[1],
    extrapolated: true,
  });
  await conn.end();
  await producer.disconnect();
}

async function antijoin(table: string, pipeline: string): Promise<void> {
  const conn = mysqlCallbacks.createConnection({ uri: url, dateStrings: true });
  const t0 = performance.now();
  let tasks = 0;
  const stream = conn
    .query(
      `SELECT s.id, s.title, s.body FROM ${table} s
       LEFT JOIN sluice_results r ON r.pipeline = ? AND r.task_key = CONVERT(s.id USING utf8mb4)
       WHERE r.task_key IS NULL ORDER BY s.id`,
      [pipeline],
    )
    .stream();
  for await (const _row of stream) tasks++;
  const seconds = (performance.now() - t0) / 1000;
  emit({ tasks, seconds, rate: tasks / seconds });
  conn.end();
}

async function kafkaOnly(count: number, bytes: number): Promise<void> {
  const { kafka, topic } = await newTopic();
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries: 5 },
  });
  await producer.connect();
  const filler = 'x'.repeat(bytes);
  const batches: Array<Array<{ key: string; value: string }>> = [];
  let batch: Array<{ key: string; value: string }> = [];
  let size = 0;
  for (let i = 0; i < count; i++) {
    const m = { key: String(i * 2 + 1), value: `{"v":1,"key":${i * 2 + 1},"payload":"${filler}"}` };
    const s = m.key.length + m.value.length + 32;
    if (size + s > 1024 * 1024 - 128) {
      batches.push(batch);
      batch = [];
      size = 0;
    }
    batch.push(m);
    size += s;
  }
  batches.push(batch);
  const t0 = performance.now();
  for (const messages of batches) await producer.send({ topic, acks: -1, messages });
  const seconds = (performance.now() - t0) / 1000;
  emit({ tasks: count, seconds, rate: count / seconds, batches: batches.length });
  await producer.disconnect();
}

switch (mode) {
  case 'sluice':
    await sluice(a!, b!, c);
    break;
  case 'naive':
    await naive(a!, Number(b));
    break;
  case 'antijoin':
    await antijoin(a!, b!);
    break;
  case 'kafka':
    await kafkaOnly(Number(a), Number(b));
    break;
  default:
    throw new Error(`unknown mode ${mode}`);
}
