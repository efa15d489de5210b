// sluice's configuration. Settings here override the defaults; environment variables (DATABASE_URL,
// SLUICE_KAFKA_BROKERS, ...) override this file, and CLI flags override both. See README "Configuration".
import { defineConfig } from './src/index.js';

export default defineConfig({
  database: { url: 'mysql://root@127.0.0.1:3306/sluice' },
  kafka: { brokers: ['127.0.0.1:9092'], clientId: 'sluice' },
  pipelines: {
    // The demo data set: documents whose entities are recognised, looked up and matched.
    demo: {
      topic: 'sluice.demo',
      partitions: 6,
      source: { table: 'sluice_demo_documents', key: 'id', columns: ['title', 'body', 'lang'] },
    },
  },
});
