// The limits a side is held against, measured in the same sitting as the sides (once per round, between
// them): what the parts sluice is made of do alone, with this checkout's benchmark code.
//   produce  the anti-join streamed alone (no Kafka) and kafkajs sending pre-built 1 MiB batches alone (no
//            database); the target is a share of the slower of the two
//   fetch    kafkajs consuming the same topic and writing nothing
//   work     BullMQ (Redis) doing the same no-op job at the same concurrency, writing the same result rows
import { resolve } from 'node:path';
import { ensureBullmq, variant } from '../lib.js';
import { copyDatabase, databaseUrl, settle, SOURCE_TABLE, PIPELINE } from './fixture.js';
import type { RunContext, Template } from './steps.js';

export interface RawMeasure {
  rate: number;
  peakRssMb: number;
}

export interface Raw {
  name: string;
  /** How a side's rate is read against it: a share of a limit, or a multiple of a rival. */
  kind: 'limit' | 'rival';
  run(t: Template, ctx: RunContext, tasks: number): Promise<RawMeasure>;
}

const script = (name: string): string => resolve(import.meta.dirname, '..', name);
/** About the size of the envelope sluice publishes for a row of the benchmark's source. */
const MESSAGE_BYTES = 450;

async function inCopy(t: Template, ctx: RunContext): Promise<string> {
  const db = `${ctx.fixture.tag}_raw_run`;
  await copyDatabase(ctx.fixture, t.db, db);
  await settle(ctx.fixture, ctx.signal);
  return db;
}

const env = (ctx: RunContext, db?: string): NodeJS.ProcessEnv => ({
  ...process.env,
  SLUICE_KAFKA_BROKERS: ctx.fixture.brokers,
  BENCH_TOPIC_PREFIX: ctx.fixture.names,
  ...(db === undefined ? {} : { BENCH_DATABASE_URL: databaseUrl(ctx.fixture, db) }),
});

const measured = (r: { rate: number; peakRssMb: number }): RawMeasure => ({ rate: r.rate, peakRssMb: r.peakRssMb });

export const RAWS: Record<string, Raw[]> = {
  produce: [
    {
      name: 'anti-join streamed alone',
      kind: 'limit',
      run: async (t, ctx) =>
        measured(
          await variant(
            script('produce-worker.ts'),
            ['antijoin', SOURCE_TABLE, PIPELINE],
            env(ctx, await inCopy(t, ctx)),
          ),
        ),
    },
    {
      name: 'kafkajs sending pre-built batches alone',
      kind: 'limit',
      run: async (_t, ctx, tasks) =>
        measured(await variant(script('produce-worker.ts'), ['kafka', String(tasks), String(MESSAGE_BYTES)], env(ctx))),
    },
  ],
  fetch: [
    {
      name: 'kafkajs consuming the topic, writing nothing',
      kind: 'limit',
      run: async (t, ctx, tasks) =>
        measured(await variant(script('fetch-worker.ts'), ['raw', t.topic!, String(tasks)], env(ctx))),
    },
  ],
  'work noop': [
    {
      name: 'BullMQ, the same no-op job at concurrency 64',
      kind: 'rival',
      run: async (t, ctx, tasks) => {
        await ensureBullmq();
        return measured(
          await variant(script('work-worker.ts'), ['bullmq', String(tasks)], env(ctx, await inCopy(t, ctx))),
        );
      },
    },
  ],
};
