// The dashboard in a real browser (Debian's Chromium driven by playwright-core) during a real run: the done
// count rises on the page, a quarantined key is found by search, its timeline shows its attempts, and
// requeue by error class brings the quarantined count to 0 and the tasks complete. Then in token mode, bound
// to 0.0.0.0 and reached through 127.0.0.1: the token becomes a cookie, the charts are drawn, every request
// succeeds and a requeue goes through. Both fail on any script error, refused request or policy violation.
// Screenshots go to test-output/dashboard/.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import mysql from 'mysql2/promise';
import { chromium, type Page } from 'playwright-core';
import { silentLogger } from '../../src/core/logger.js';
import { NonRetriableError } from '../../src/core/errors.js';
import { startDashboard } from '../../src/dashboard/server.js';
import { startFetcher } from '../../src/fetcher/fetcher.js';
import { produce } from '../../src/producer/producer.js';
import { startWorker } from '../../src/worker/worker.js';
import { randomName } from '../helpers/db.js';
import { makeConfig, onTeardown, ROOT } from '../helpers/fixtures.js';
import { closedPort, ensureKafka } from '../helpers/kafka.js';
import { waitFor } from '../helpers/spool.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(ROOT, 'test-output', 'dashboard');

/** A page in a fresh headless Chromium, and what went wrong on it: script errors, console errors (a refused
 * inline script or style is one), failed requests and answers of 400 and above. */
async function openPage(t: TestContext): Promise<{ page: Page; problems: string[] }> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
  onTeardown(t, () => browser.close());
  const page = await browser.newPage();
  page.on('dialog', (d) => void d.accept());
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`script error: ${err.message}`));
  page.on('console', (m) => void (m.type() === 'error' && problems.push(`console: ${m.text()}`)));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  page.on('response', (r) => void (r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`)));
  return { page, problems };
}

// Each test is skipped on its own, so that the runner counts them as skipped (npm test stops before this unless
// SLUICE_SKIP_BROWSER=1 says to go on without the browser: scripts/test-prereqs.sh).
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (scripts/test-prereqs.sh installs it)`;

describe('the dashboard in a browser', () => {
  it(
    'shows a run as it happens, finds a quarantined task and its timeline, ' +
      'and requeues by error class until all is done',
    { skip },
    async (t) => {
      await ensureKafka();
      mkdirSync(SHOTS, { recursive: true });
      let fixed = false;
      const source = { table: 'docs', key: 'id', columns: ['body'] };
      const stages = [
        // About 40 tasks/s: the run lasts long enough for the page (refreshed every 3 s) to show it move.
        {
          name: 'slow',
          concurrency: 1,
          resource: 'gpu',
          run: async (p: { body: string }) => (await new Promise((r) => setTimeout(r, 25)), p.body.length),
        },
        {
          name: 'check',
          run: async (n: number, ctx: { task: { key: string | number } }) => {
            if (!fixed && Number(ctx.task.key) % 25 === 0)
              throw new NonRetriableError(`document ${ctx.task.key} is poison`);
            return n;
          },
        },
      ];
      const { config, url } = await makeConfig(t, {
        dashboard: { port: await closedPort() },
        resources: { gpu: { concurrency: 2 } },
        pipelines: { docs: { topic: randomName('sluice-dash'), partitions: 2, source, stages } },
      });
      const db = await mysql.createConnection(url);
      onTeardown(t, () => db.end());
      await db.query('CREATE TABLE docs (id INT PRIMARY KEY, body VARCHAR(40) NOT NULL)');
      await db.query("INSERT INTO docs SELECT seq, CONCAT('document ', seq) FROM seq_1_to_500");
      const log = silentLogger();
      const dashboard = await startDashboard({ config, log });
      onTeardown(t, () => dashboard.close());
      const { page, problems } = await openPage(t);
      await page.goto(dashboard.url);
      await page.waitForSelector('#done');
      const doneOnPage = async (): Promise<number> => Number((await page.textContent('#done'))!.replace(/,/g, ''));
      assert.equal(await doneOnPage(), 0);

      await produce({ config, pipeline: 'docs', log });
      const fetcher = await startFetcher({ config, pipeline: 'docs', log });
      onTeardown(t, () => fetcher.stop());
      const worker = await startWorker({ config, pipeline: 'docs', log });
      onTeardown(t, () => worker.stop());
      await waitFor('the page to show work under way', async () => (await doneOnPage()) > 0, 30_000);
      const first = await doneOnPage();
      await waitFor('the done count to rise on the page', async () => (await doneOnPage()) > first, 30_000);
      await page.screenshot({ path: join(SHOTS, '1-running.png'), fullPage: true });
      // The resource, its chart over time, and each stage's failed tries are on the page too.
      await page.waitForSelector('#resource-charts .uplot');
      assert.match((await page.textContent('#resources'))!, /gpu/);
      assert.match((await page.textContent('#stages'))!, /retry ratio/);
      await waitFor(
        '480 done and 20 quarantined on the page',
        async () => (await doneOnPage()) === 480 && (await page.textContent('#quarantined')) === '20',
        60_000,
      );

      await page.fill('#q-key', '250');
      await page.click('#search button[type=submit]');
      await page.waitForSelector('a[data-key="250"]');
      await page.click('a[data-key="250"]');
      await page.waitForSelector('#timeline:not([hidden])');
      const timeline = (await page.textContent('#timeline'))!;
      assert.match(timeline, /task 250: quarantined/);
      assert.match(timeline, /check #1 {2}NonRetriableError: document 250 is poison/);
      await page.screenshot({ path: join(SHOTS, '2-timeline.png'), fullPage: true });

      fixed = true;
      // A requeue acts on the table on screen: search first.
      await page.fill('#q-key', '');
      await page.selectOption('#q-class', 'NonRetriableError');
      await page.click('#search button[type=submit]');
      await page.waitForFunction(() => document.getElementById('matched')?.textContent === '20 matching');
      await page.click('#requeue');
      await page.waitForFunction(
        () => /requeued 20/.test(document.getElementById('requeue-msg')!.textContent ?? ''),
        undefined,
        { timeout: 30_000 },
      );
      try {
        await waitFor(
          'quarantine empty and every task done on the page',
          async () => (await page.textContent('#quarantined')) === '0' && (await doneOnPage()) === 500,
          60_000,
        );
      } finally {
        await page.screenshot({ path: join(SHOTS, '3-requeued.png'), fullPage: true });
      }
      assert.deepEqual(problems, [], 'no script error, refused request or policy violation on the page');
    },
  );

  it(
    'works in token mode bound to 0.0.0.0: the token becomes a cookie, charts and lists load, requeue goes through',
    { skip },
    async (t) => {
      await ensureKafka();
      mkdirSync(SHOTS, { recursive: true });
      const port = await closedPort();
      const source = { table: 'docs', key: 'id', columns: ['body'] };
      const stages = [{ name: 'ner', run: async () => null }];
      const { config, url } = await makeConfig(t, {
        dashboard: { port, host: '0.0.0.0', token: 'tok-3n', allowedHosts: ['sluice.example'] },
        pipelines: { docs: { topic: randomName('sluice-dash'), partitions: 1, source, stages } },
      });
      const db = await mysql.createConnection(url);
      onTeardown(t, () => db.end());
      await db.query('CREATE TABLE docs (id INT PRIMARY KEY, body VARCHAR(40) NOT NULL)');
      await db.query("INSERT INTO docs SELECT seq, CONCAT('document ', seq) FROM seq_1_to_30");
      await db.query(
        'INSERT INTO sluice_dead_tasks (pipeline, task_key, stage, error_class, ' +
          "error_message, attempts, payload) SELECT 'docs', CAST(seq AS CHAR), " +
          "'ner', 'TypeError', 'bug', 1, '{}' FROM seq_1_to_5",
      );
      await db.query(
        'INSERT INTO sluice_attempts (pipeline, task_key, stage, attempt, ' +
          "error_class, error_message, retriable) SELECT 'docs', CAST(seq AS CHAR), " +
          "'ner', 1, 'TypeError', 'bug', 0 FROM seq_1_to_5",
      );
      const dashboard = await startDashboard({ config, log: silentLogger() });
      onTeardown(t, () => dashboard.close());
      const { page, problems } = await openPage(t);
      await page.goto(`http://127.0.0.1:${port}/?token=tok-3n`);
      assert.equal(new URL(page.url()).search, '', 'the token left the address');
      await page.waitForSelector('#charts .uplot');
      await page.waitForFunction(() =>
        [...(document.getElementById('q-class') as HTMLSelectElement).options].some((o) => o.value === 'TypeError'),
      );
      assert.equal(await page.textContent('#quarantined'), '5');
      await page.selectOption('#q-class', 'TypeError');
      await page.click('#search button[type=submit]');
      await page.waitForFunction(() => document.getElementById('matched')?.textContent === '5 matching');
      await page.click('#requeue');
      await page.waitForFunction(
        () => /requeued 5, published 5/.test(document.getElementById('requeue-msg')!.textContent ?? ''),
        undefined,
        { timeout: 30_000 },
      );
      await page.screenshot({ path: join(SHOTS, '4-token-mode.png'), fullPage: true });
      assert.deepEqual(problems, [], 'no script error, refused request or policy violation on the page');
    },
  );
});
