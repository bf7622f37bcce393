// The log viewer in a real browser against a real daemon and the fake relay: the run
// picker (run_id kept in the address), filters by status, error class, protocol and
// text, the detail pane (overview, reply, error, timings, tokens), paging, and a run
// finishing live while the latest run is shown.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, launch, openPage, until, axeViolations, PHONE } from './harness.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack({ channels: ['alpha'], runs: 2 });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

const models = (page) => page.$$eval('#rows .lv-model', (els) => els.map((e) => e.textContent).sort());
const rowsReady = (page) => page.waitForFunction(() => !document.querySelector('#rows').hasAttribute('aria-busy'));

test('the viewer picks a run, filters by class, status, protocol and text, and shows a row in full', async () => {
  const id = stack.ids.alpha;
  const runs = (await stack.api('GET', `/api/targets/${id}/runs`)).items;
  assert.equal(runs.length, 2);
  const page = await openPage(browser);
  await page.goto(`${stack.base}/viewer.html?target_id=${id}`);
  await page.waitForSelector('#rows .lv-row');
  assert.equal(await page.textContent('#target-name'), 'alpha');
  assert.deepEqual(await models(page), ['claude-3-5-haiku', 'gemini-2.0-flash', 'gpt-4o-err500', 'gpt-4o-mini']);
  assert.match(await page.textContent('#showing'), /1–4 of 4/);
  assert.match(await page.textContent('#summary'), /75(\.0)?%/);

  // The older run, by the picker: its id goes into the address.
  await page.selectOption('#run-picker', String(runs[1].id));
  await until(page, (r) => new URL(location.href).searchParams.get('run_id') === String(r), runs[1].id);
  await rowsReady(page);
  const ids = await page.$$eval('#rows .lv-row', (els) => els.map((e) => Number(e.dataset.id)));
  const older = (await stack.api('GET', `/api/targets/${id}/logs?run_id=${runs[1].id}`)).items.map((r) => r.id);
  assert.deepEqual(ids.sort(), older.sort());

  // Error class: the class offered is the one the run found, with its count.
  const classOptions = await page.$$eval('#f-class option', (os) => os.map((o) => o.textContent));
  assert.ok(classOptions.some((o) => /upstream 5xx \(1\)/.test(o)), classOptions.join('|'));
  await page.selectOption('#f-class', 'upstream_5xx');
  await until(page, () => document.querySelectorAll('#rows .lv-row').length === 1);
  assert.deepEqual(await models(page), ['gpt-4o-err500']);
  assert.equal(new URL(page.url()).searchParams.get('error_class'), 'upstream_5xx');

  // The detail pane of the failing row: status, HTTP 500, the full error.
  await page.click('#rows .lv-row');
  assert.equal(await page.textContent('#detail-title'), 'gpt-4o-err500');
  assert.match(await page.textContent('#detail .lv-status'), /Failed/);
  assert.match(await page.textContent('#detail .lv-grid'), /HTTP status\s*500/);
  await page.click('#tab-error');
  const error = await page.textContent('#detail .lv-pre');
  const apiRow = (await stack.api('GET', `/api/targets/${id}/logs?run_id=${runs[1].id}&error_class=upstream_5xx`)).items[0];
  assert.equal(error, apiRow.error);
  assert.ok(error.length > 10);

  // Status and protocol filters, then text: the passing Gemini row with its reply and timings.
  await page.click('#f-clear');
  await until(page, () => document.querySelectorAll('#rows .lv-row').length === 4);
  await page.selectOption('#f-status', 'ok');
  await until(page, () => document.querySelectorAll('#rows .lv-row').length === 3);
  await page.selectOption('#f-protocol', 'gemini');
  await until(page, () => document.querySelectorAll('#rows .lv-row').length === 1);
  assert.deepEqual(await models(page), ['gemini-2.0-flash']);
  await page.click('#f-clear');
  await page.fill('#f-q', 'CLAUDE');
  await until(page, () => document.querySelectorAll('#rows .lv-row').length === 1);
  assert.deepEqual(await models(page), ['claude-3-5-haiku']);
  await page.click('#rows .lv-row');
  await page.click('#tab-overview');
  const overview = await page.textContent('#detail .lv-overview');
  for (const label of ['Time to headers (TTFB)', 'Time to first token (TTFT)', 'Total', 'Output tokens', 'Reply named']) {
    assert.ok(overview.includes(label), `${label} in ${overview}`);
  }
  assert.match(overview, /\d+ ms|\d\.\d+ s/);
  await page.click('#tab-reply');
  const claudeRow = (await stack.api('GET', `/api/targets/${id}/logs?run_id=${runs[1].id}&q=claude`)).items[0];
  assert.equal(await page.textContent('#detail .lv-pre'), claudeRow.content);

  // A reload keeps the view: run, text and the chosen row come from the address.
  await page.reload();
  await page.waitForSelector('#rows .lv-row');
  assert.equal(await page.inputValue('#f-q'), 'CLAUDE');
  assert.equal(await page.inputValue('#run-picker'), String(runs[1].id));
  assert.equal(await page.textContent('#detail-title'), 'claude-3-5-haiku');
  assert.deepEqual(await axeViolations(page), []);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a search typed while earlier rows are still on their way is kept and applied', async () => {
  const id = stack.ids.alpha;
  const page = await openPage(browser);
  await page.goto(`${stack.base}/viewer.html?target_id=${id}`);
  await page.waitForSelector('#rows .lv-row');
  await page.selectOption('#f-status', 'ok');
  await until(page, () => document.querySelectorAll('#rows .lv-row').length === 3);
  // The rows "clear filters" asks for arrive only once the search is typed, before its
  // pause runs out: they must neither wipe the box nor the search it starts.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await page.route((url) => url.pathname.endsWith('/logs') && !url.searchParams.get('q'), async (route) => {
    await held;
    await route.continue();
  });
  await page.click('#f-clear');
  await page.fill('#f-q', 'CLAUDE');
  release();
  await until(page, () => document.querySelectorAll('#rows .lv-row').length === 1
    && new URL(location.href).searchParams.get('q') === 'CLAUDE');
  assert.deepEqual(await models(page), ['claude-3-5-haiku']);
  assert.equal(await page.inputValue('#f-q'), 'CLAUDE');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('keyboard: the list moves with the arrow keys and the tabs with left and right', async () => {
  const page = await openPage(browser);
  await page.goto(`${stack.base}/viewer.html?target_id=${stack.ids.alpha}`);
  await page.waitForSelector('#rows .lv-row');
  await page.focus('#rows .lv-row');
  const first = await page.evaluate(() => document.activeElement.dataset.id);
  await page.keyboard.press('ArrowDown');
  const second = await page.evaluate(() => document.activeElement.dataset.id);
  assert.notEqual(first, second);
  assert.equal(await page.getAttribute(`#rows .lv-row[data-id="${second}"]`, 'aria-current'), 'true');
  await page.focus('#tab-overview');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-reply');
  assert.equal(await page.getAttribute('#tab-reply', 'aria-selected'), 'true');
  // The focus ring is visible.
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('pages of a large run: 100 rows a page, the next page holds the rest', async () => {
  // 150 models on their own relay: two pages.
  const { startRelay } = await import('./harness.mjs');
  const names = Array.from({ length: 150 }, (_, i) => `bulk-${String(i).padStart(3, '0')}`);
  const relay = await startRelay(names);
  try {
    const { item } = await stack.api('POST', '/api/targets', { name: 'bulk', base_url: relay.url, api_key: stack.relayKey, interval_min: 60 });
    await stack.run(item.id);
    const page = await openPage(browser);
    await page.goto(`${stack.base}/viewer.html?target_id=${item.id}`);
    await page.waitForSelector('#rows .lv-row');
    assert.equal(await page.locator('#rows .lv-row').count(), 100);
    assert.match(await page.textContent('#showing'), /1–100 of 150/);
    assert.ok(await page.isDisabled('#prev'));
    await page.click('#next');
    await until(page, () => document.querySelectorAll('#rows .lv-row').length === 50);
    assert.match(await page.textContent('#showing'), /101–150 of 150/);
    assert.ok(await page.isDisabled('#next'));
    const all = new Set([...(await page.$$eval('#rows .lv-model', (els) => els.map((e) => e.textContent)))]);
    assert.equal(all.size, 50);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  } finally {
    relay.stop();
  }
});

test('a run finishing live shows up in the latest-run view; at 390 px the detail replaces the list', async () => {
  const id = stack.ids.alpha;
  const page = await openPage(browser, { viewport: PHONE });
  await page.goto(`${stack.base}/viewer.html?target_id=${id}`);
  await page.waitForSelector('#rows .lv-row');
  await until(page, () => document.querySelector('#live-dot').dataset.state === 'live');
  const before = await page.$$eval('#run-picker option', (os) => os.length);
  const firstId = await page.getAttribute('#rows .lv-row', 'data-id');
  await stack.run(id);
  await until(page, (n) => document.querySelectorAll('#run-picker option').length === n + 1, before);
  await until(page, (old) => document.querySelector('#rows .lv-row')?.dataset.id !== old, firstId);
  // Phone: a row opens its details full width; "back" returns to the list.
  assert.ok(await page.isHidden('#detail'));
  await page.click('#rows .lv-row');
  assert.ok(await page.isVisible('#detail'));
  assert.ok(await page.isHidden('#rows'));
  await page.click('#detail .lv-back');
  assert.ok(await page.isVisible('#rows'));
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
