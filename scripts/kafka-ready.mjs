// Exits 0 once a Kafka broker answers a metadata request, 1 after the deadline.
// Used by scripts/services.sh; plain JS so it runs before anything is compiled.
// usage: node scripts/kafka-ready.mjs <host:port> <timeoutSeconds>
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let kafkajs;
try {
  kafkajs = require('kafkajs');
} catch {
  console.error('kafkajs is not installed: run `npm ci` (or `npm install`) first');
  process.exit(2);
}
const { Kafka, logLevel } = kafkajs;
const broker = process.argv[2] ?? '127.0.0.1:9092';
const deadline = Date.now() + Number(process.argv[3] ?? 60) * 1000;

const kafka = new Kafka({
  clientId: 'sluice-ready-check',
  brokers: [broker],
  logLevel: logLevel.NOTHING,
  connectionTimeout: 1000,
  requestTimeout: 2000,
  retry: { retries: 0 },
});

while (Date.now() < deadline) {
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    await admin.disconnect();
    if (cluster.brokers.length > 0 && cluster.controller !== null) {
      console.log(`kafka ready: ${cluster.brokers.length} broker(s), cluster ${cluster.clusterId}`);
      process.exit(0);
    }
  } catch {
    await admin.disconnect().catch(() => {});
  }
  await new Promise((r) => setTimeout(r, 500));
}
process.exit(1);
