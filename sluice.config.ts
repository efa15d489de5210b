// sluice's configuration. Settings here override the defaults; environment variables (DATABASE_URL,
// SLUICE_KAFKA_BROKERS, ...) override this file, and CLI flags override both. See README "Configuration".
import { defineConfig } from './src/index.js';
import { DEMO_RESOURCE, demoResource, demoResults, demoStages } from './src/demo/stages.js';

const databaseUrl = process.env.DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/sluice';

export default defineConfig({
  database: { url: databaseUrl },
  kafka: { brokers: ['127.0.0.1:9092'], clientId: 'sluice' },
  // The demo's shared entity-recognition service: every worker on every machine together stays within a
  // limit sluice learns from the service's latency and resets (README, "Resources").
  resources: { [DEMO_RESOURCE]: demoResource },
  pipelines: {
    // The demo data set: documents whose entities are recognised, looked up and matched. `npm run demo`
    // starts the entity-recognition service itself; `npm run work -- --pipeline demo` expects it at
    // SLUICE_DEMO_NER_URL.
    demo: {
      topic: 'sluice.demo',
      partitions: 6,
      source: { table: 'sluice_demo_documents', key: 'id', columns: ['title', 'body', 'lang'] },
      // Done means a row in the demo's doc_ent_map-style table (see README, "Your result table").
      results: demoResults,
      stages: demoStages({ databaseUrl, nerUrl: process.env.SLUICE_DEMO_NER_URL ?? 'http://127.0.0.1:7450/ner' }),
    },
  },
});
