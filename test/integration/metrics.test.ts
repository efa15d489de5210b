// The opt-in Prometheus endpoint: the exposition format itself, and `run --metrics-port` counting stage
// runs, failures, retries and durations per stage while exposing spool depth, lag, paused and in-flight.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type Connection, type RowDataPacket } from 'mysql2/promise';
import { createRegistry, mirror, stageMetrics } from '../../src/core/metrics.js';
import { ROOT, runCli } from '../helpers/cli.js';
import { kafkaAdmin, spawnCli, tempDir, fileDatabase } from '../helpers/fixtures.js';
import { randomName } from '../helpers/db.js';
import { BROKERS, closedPort, ensureKafka } from '../helpers/kafka.js';
import { publishRaw, tasks, waitFor } from '../helpers/spool.js';
import { seq } from '../helpers/regex.js';

let url: string;
let db: Connection;
fileDatabase({ intSource: 100_000 }, (d) => ({ url, db } = d));

/** The value of one sample line (`name{labels} value`) in a scrape, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics registry', () => {
  it(
    'exposes the stage metrics, mirrored gauges and counters, and the default ' + 'process metrics in the text format',
    async () => {
      const r = createRegistry();
      const stages = stageMetrics(r);
      mirror(r, 't_depth', 'A gauge read at scrape time.', ['pipeline'], (set) => set({ pipeline: 'a' }, 7));
      let total = 3;
      mirror(
        r,
        't_spooled_total',
        'A total kept by a component.',
        ['pipeline'],
        (set) => set({ pipeline: 'a' }, total),
        'counter',
      );
      stages.processed.inc({ pipeline: 'p', stage: 'say "hi"\n' }, 2);
      for (const v of [0.0005, 0.5, 500]) stages.duration.observe({ pipeline: 'p', stage: 's' }, v);
      let text = await r.metrics();
      assert.match(
        text,
        seq(
          /# HELP sluice_stage_processed_total Stage runs that succeeded\.\n/,
          /# TYPE sluice_stage_processed_total counter\n/,
        ),
      );
      assert.equal(sample(text, 'sluice_stage_processed_total{pipeline="p",stage="say \\"hi\\"\\n"}'), 2);
      assert.equal(sample(text, 't_depth{pipeline="a"}'), 7);
      assert.equal(sample(text, 't_spooled_total{pipeline="a"}'), 3);
      assert.equal(sample(text, 'sluice_stage_duration_seconds_bucket{le="0.001",pipeline="p",stage="s"}'), 1);
      assert.equal(sample(text, 'sluice_stage_duration_seconds_bucket{le="1",pipeline="p",stage="s"}'), 2);
      assert.equal(sample(text, 'sluice_stage_duration_seconds_bucket{le="+Inf",pipeline="p",stage="s"}'), 3);
      assert.equal(sample(text, 'sluice_stage_duration_seconds_count{pipeline="p",stage="s"}'), 3);
      for (const name of ['nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'process_cpu_seconds_total']) {
        assert.ok(sample(text, name) !== undefined, `default metric ${name}`);
      }
      assert.match(text, /# TYPE nodejs_gc_duration_seconds histogram/);
      total = 10;
      text = await r.metrics();
      assert.equal(sample(text, 't_spooled_total{pipeline="a"}'), 10, 'a mirrored total is read again at each scrape');
    },
  );
});

describe('npm run run -- --metrics-port', () => {
  it('serves per-stage counters and histograms, spool depth, lag, paused and in-flight while it works', async (t) => {
    await ensureKafka();
    const name = randomName('m');
    const topic = randomName('sluice-metrics');
    await (await kafkaAdmin(t)).createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
    await publishRaw(topic, tasks(name, 60));
    const dir = tempDir(t, 'sluice-metrics-');
    // Every 5th task fails its first attempt of `check`: 12 failures, 12 retries, 60 successes. Task 1 is refused
    // by `echo` (not retriable): quarantined, 59 results.
    const refuse = "Object.assign(new Error('refused'), { retriable: false })";
    writeFileSync(
      join(dir, 'sluice.config.ts'),
      [
        'export default {',
        `  fetcher: { groupId: ${JSON.stringify(randomName('g'))} },`,
        `  spool: { dir: ${JSON.stringify(join(dir, 'spool'))} },`,
        '  worker: { pollMs: 20 },',
        `  pipelines: { ${name}: { topic: ${JSON.stringify(topic)}, partitions: 2,`,
        "    source: { table: 'unused', key: 'id', columns: [] },",
        '    stages: [',
        "      { name: 'check', retry: { initialDelayMs: 1, maxDelayMs: 5 },",
        '        run: async (p, ctx) => {',
        "          if (p.n % 5 === 0 && ctx.attempt === 1) throw new Error('flaky');",
        '          return p;',
        '        } },',
        `      { name: 'echo', run: async (p) => { if (p.n === 1) throw ${refuse}; return p; } },`,
        '    ] } },',
        '};',
        '',
      ].join('\n'),
    );
    const port = await closedPort();
    const run = spawnCli(t, ['run', '--pipeline', name, '--metrics-port', String(port)], {
      env: {
        DATABASE_URL: url,
        SLUICE_KAFKA_BROKERS: BROKERS.join(','),
        SLUICE_CONFIG: join(dir, 'sluice.config.ts'),
        SLUICE_LOG_LEVEL: 'warn',
      },
    });
    const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    let text = '';
    try {
      await waitFor(
        '59 results',
        async () => {
          const [rows] = await db.query<RowDataPacket[]>(
            'SELECT COUNT(*) AS n FROM sluice_results WHERE pipeline = ?',
            [name],
          );
          return Number(rows[0]?.n) === 59;
        },
        60_000,
      );
      await waitFor(
        'the counters to reach 59 done and 1 quarantined',
        async () => {
          text = await scrape().catch(() => '');
          const done = sample(text, `sluice_tasks_total{pipeline="${name}",outcome="done"}`);
          // The label of a quarantine keeps its first name, 'dead' (dashboards select on it).
          return done === 59 && sample(text, `sluice_tasks_total{pipeline="${name}",outcome="dead"}`) === 1;
        },
        10_000,
      );
    } finally {
      run.child.kill('SIGTERM');
    }
    assert.equal(await run.exited, 0, run.stderr());
    const p = `pipeline="${name}"`;
    assert.equal(sample(text, `sluice_stage_processed_total{${p},stage="check"}`), 60);
    assert.equal(sample(text, `sluice_stage_processed_total{${p},stage="echo"}`), 59);
    assert.equal(sample(text, `sluice_stage_failed_total{${p},stage="echo"}`), 1);
    assert.equal(sample(text, `sluice_stage_failed_total{${p},stage="check"}`), 12);
    assert.equal(sample(text, `sluice_stage_retried_total{${p},stage="check"}`), 12);
    assert.equal(
      sample(text, `sluice_stage_duration_seconds_count{${p},stage="check"}`),
      72,
      'successes and failures are timed',
    );
    assert.equal(sample(text, `sluice_stage_duration_seconds_bucket{le="+Inf",${p},stage="echo"}`), 60);
    assert.ok(sample(text, 'nodejs_eventloop_lag_seconds') !== undefined, 'default process metrics are served too');
    assert.equal(sample(text, `sluice_spool_depth_items{${p}}`), 0);
    assert.equal(sample(text, `sluice_fetcher_paused{${p}}`), 0);
    assert.equal(sample(text, `sluice_fetcher_spooled_total{${p}}`), 60);
    assert.equal(sample(text, `sluice_worker_in_flight{${p}}`), 0);
    assert.match(text, new RegExp(`sluice_consumer_lag\\{${p},partition="[01]"\\} 0`));
  });

  it('refuses a port that is taken, naming the setting, and a port that is not a number', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    try {
      const env = {
        DATABASE_URL: url,
        SLUICE_KAFKA_BROKERS: BROKERS.join(','),
        SLUICE_CONFIG: join(ROOT, 'sluice.config.ts'),
      };
      const taken = await runCli(['fetch', '--pipeline', 'demo', '--metrics-port', String(port)], { env });
      assert.equal(taken.code, 2, taken.stderr);
      assert.match(taken.stderr, /metrics\.port: cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/);
      const bad = await runCli(['work', '--pipeline', 'demo', '--metrics-port', 'nine'], { env });
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--metrics-port: must be a whole number, got "nine"/);
    } finally {
      srv.close();
    }
  });
});
