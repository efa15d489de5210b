// What bench:compare and bench:profile share around their runs: a log with the time since the start, the
// fixture (server connection, Kafka admin) with this invocation's names, a folder for the runs, and a clean
// way out. The first SIGINT/SIGTERM kills the side processes, lets the loop see the interruption and sweeps
// every database, topic and group of the invocation; a second one exits at once.
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { killAll } from './cli-process.js';
import { openFixture, sweep } from './fixture.js';
import type { RunContext } from './steps.js';

export interface Harness {
  ctx: RunContext;
  log: (line: string) => void;
  minutes(): number;
  /** Sweeps what the invocation made and closes the fixture; the folder of runs goes unless `keepRuns`. */
  close(keepRuns?: boolean): Promise<void>;
}

export async function openHarness(folder: string): Promise<Harness> {
  const started = performance.now();
  const log = (line: string): void =>
    console.error(`[${((performance.now() - started) / 1000).toFixed(0).padStart(5)} s] ${line}`);
  const fixture = await openFixture(
    process.env.BENCH_DATABASE_SERVER_URL ?? 'mysql://root@127.0.0.1:3306/mysql',
    process.env.SLUICE_KAFKA_BROKERS ?? '127.0.0.1:9092',
  );
  const dir = resolve('.bench', folder);
  rmSync(dir, { recursive: true, force: true });
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (abort.signal.aborted) process.exit(130);
    log(`${sig}: stopping the side processes, then cleaning up (again to exit at once)`);
    abort.abort();
    killAll();
    process.exitCode = 130;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    ctx: { fixture, dir, log, signal: abort.signal },
    log,
    minutes: () => (performance.now() - started) / 60_000,
    async close(keepRuns = false) {
      try {
        await sweep(fixture);
      } finally {
        await fixture.close();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        if (!keepRuns) rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
