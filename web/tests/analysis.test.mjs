// The analysis page in a real browser against a real daemon: a data directory of the Go
// program with 30 days of history (web/tests/go-history.py) is upgraded by apimond at
// its first start, then two live runs through the fake relay add today's rows with
// their error classes. The charts draw the rollups the API serves, never made-up data.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRelay, startDaemon, launch, openPage, until, axeViolations, screenshot, ROOT, PHONE } from './harness.mjs';

const RELAY_KEY = 'sk-fake-upstream-key-0123456789';
let relay;
let daemon;
let browser;
let dir;

before(async () => {
  relay = await startRelay(['gpt-4o-mini', 'claude-3-5-haiku', 'gemini-2.0-flash', 'gpt-4o-err500']);
  dir = mkdtempSync(join(tmpdir(), 'apimon-go-history-'));
  execFileSync('python3', [
    join(ROOT, 'web', 'tests', 'go-history.py'),
    join(ROOT, 'apimond', 'tests', 'fixtures', 'go-data', 'registry.db'),
    join(dir, 'data'), relay.url, RELAY_KEY,
  ]);
  daemon = await startDaemon({ DATA_DIR: join(dir, 'data') });
  // Two live runs; the Go target has run before, so wait for the runs themselves.
  for (let n = 1; n <= 2; n += 1) {
    await daemon.run(1);
    for (let i = 0; i < 200; i += 1) {
      const runs = (await daemon.api('GET', '/api/targets/1/runs')).items;
      if (runs.filter((r) => r.trigger === 'manual' && r.status !== 'running').length >= n) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await daemon?.stop();
  relay?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const filled = (page, id) => page.getAttribute(`#${id}`, 'data-filled').then(Number);
const points = (page, id) => page.getAttribute(`#${id}`, 'data-points').then(Number);

test('30 days of rollups: success rate, latency and error classes over time, uptime, top errors, per model', async () => {
  const page = await openPage(browser);
  await page.goto(`${daemon.base}/analysis.html?target_id=1&window=30d`);
  await page.waitForSelector('#chart-rate canvas');
  assert.equal(await page.textContent('#target-name'), 'relay-one');

  // 31 daily buckets; every day of the last 30 had probes (4 runs a day).
  assert.equal(await points(page, 'chart-rate'), 31);
  assert.ok(await filled(page, 'chart-rate') >= 30, `rate points: ${await filled(page, 'chart-rate')}`);
  assert.ok(await filled(page, 'chart-latency') >= 60, 'p50 and p95 for each day');
  // Today's live runs found upstream 5xx (the Go rows carry no class).
  assert.ok(await filled(page, 'chart-errors') >= 1);
  assert.match(await page.getAttribute('#chart-errors', 'aria-label'), /upstream 5xx/);

  // The cards agree with the API's rollups.
  const daily = (await daemon.api('GET', '/api/targets/1/stats?period=day&days=31')).items;
  const since = Math.floor((Date.now() / 1000 - 30 * 86400) / 86400) * 86400;
  const rows = daily.filter((r) => r.bucket_start >= since);
  const count = rows.reduce((n, r) => n + r.count, 0);
  const success = rows.reduce((n, r) => n + r.success, 0);
  assert.ok(count > 400, `${count} probes`);
  const cards = await page.textContent('#cards');
  assert.ok(cards.includes(count.toLocaleString('en')), `${count} in ${cards}`);
  assert.ok(cards.includes(`${(Math.round((1000 * success) / count) / 10).toFixed(1)}%`), cards);

  // Uptime per model over the three windows: the failing model stands out.
  const uptime = await page.$$eval('#uptime-body tr', (trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent.trim())));
  const failing = uptime.find((r) => r[0] === 'gpt-4o-err500');
  const passing = uptime.find((r) => r[0] === 'gpt-4o-mini');
  assert.equal(passing.slice(1).join(' '), '100% 100% 100%');
  for (const cell of failing.slice(1)) assert.ok(Number.parseFloat(cell) < 50, failing.join(' '));

  // Latency by model and the per-model table, sortable: every model of the rollups (the
  // Go program's own rows of today add theirs).
  const names = new Set(rows.map((r) => r.model));
  const timed = new Set(rows.filter((r) => r.latency_p50_ms !== null).map((r) => r.model));
  assert.ok(names.size >= 4);
  assert.equal(await page.locator('#model-body tr').count(), names.size);
  assert.equal(await page.locator('#by-model .an-bar-row').count(), timed.size);
  await page.click('#model-head button[data-col="fail"]');
  await page.click('#model-head button[data-col="fail"]');
  assert.equal(await page.textContent('#model-body tr:first-child th'), 'gpt-4o-err500');

  // Top errors: the Go program's HTTP 500 text, most frequent first, linking to the logs.
  const top = page.locator('#top-errors .an-error').first();
  assert.match(await top.textContent(), /upstream exploded|500/);
  assert.match(await top.locator('a').getAttribute('href'), /viewer\.html\?target_id=1&scope=all&status=fail/);
  assert.deepEqual(await axeViolations(page), []);
  await screenshot(page, 'analysis-30-days-desktop-light-en');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('the window and the model are kept in the address; 7 days is hourly, 24 hours too', async () => {
  const page = await openPage(browser, { viewport: PHONE });
  await page.goto(`${daemon.base}/analysis.html?target_id=1`);
  await page.waitForSelector('#chart-rate canvas');
  assert.equal(await page.getAttribute('[data-window="24h"]', 'aria-pressed'), 'true');
  assert.ok(await points(page, 'chart-rate') >= 24, `24 h points: ${await points(page, 'chart-rate')}`);
  assert.ok(await filled(page, 'chart-rate') >= 4, `a run every 6 hours: ${await filled(page, 'chart-rate')}`);
  await page.click('[data-window="7d"]');
  await until(page, () => new URL(location.href).searchParams.get('window') === '7d'
    && Number(document.querySelector('#chart-rate').dataset.points) >= 168);
  assert.ok(await points(page, 'chart-rate') >= 168, `7 d points: ${await points(page, 'chart-rate')}`);
  assert.ok(await filled(page, 'chart-rate') >= 27, `7 d filled: ${await filled(page, 'chart-rate')}`);
  await page.selectOption('#model-picker', 'claude-3-5-haiku');
  await until(page, () => new URL(location.href).searchParams.get('model') === 'claude-3-5-haiku');
  assert.ok(await page.isHidden('#weighted-note'), 'the weighting note is for all models only');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `wider than the screen by ${overflow} px`);
  await page.reload();
  await page.waitForSelector('#chart-rate canvas');
  assert.equal(await page.inputValue('#model-picker'), 'claude-3-5-haiku');
  assert.equal(await page.getAttribute('[data-window="7d"]', 'aria-pressed'), 'true');
  await screenshot(page, 'analysis-7-days-one-model-390-light-en');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a channel without runs says so instead of drawing empty charts', async () => {
  const { item } = await daemon.api('POST', '/api/targets', { name: 'fresh', base_url: relay.url, api_key: RELAY_KEY });
  const page = await openPage(browser);
  await page.goto(`${daemon.base}/analysis.html?target_id=${item.id}`);
  await page.waitForSelector('#chart-rate canvas');
  assert.ok(await page.isVisible('#empty'));
  assert.equal(await filled(page, 'chart-rate'), 0);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
