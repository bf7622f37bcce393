// The dashboard in a real browser against a real daemon and the fake relay: seeded
// channels, live updates from runs started through the API, drag reorder that
// survives a reload, filters and search kept in the address, the channel form (add,
// a refused field, edit, delete), the token prompt and the first-run state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, startDaemon, launch, openPage, until, PHONE, TOKEN } from './harness.mjs';

const VISITOR = 'web-test-visitor-token-0123456789';
let stack;
let browser;

before(async () => {
  stack = await startStack({ env: { API_MONITOR_TOKEN_VISITOR: VISITOR } });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

const names = (page) => page.$$eval('#channels .channel .card-name', (els) => els.map((e) => e.textContent));

test('shows the seeded channels with their models, badges and success bar', async () => {
  const page = await openPage(browser);
  await page.goto(stack.base);
  await page.waitForSelector('.channel');
  assert.deepEqual(await names(page), ['alpha', 'beta', 'gamma']);
  assert.equal(await page.textContent('#stat-channels'), '3');
  assert.equal(await page.textContent('#stat-models'), '12');
  assert.equal(await page.textContent('#stat-healthy'), '9');
  assert.equal(await page.textContent('#stat-rate'), '75%');
  const card = page.locator('.channel[data-id]').first();
  assert.match(await card.locator('.card-badges').textContent(), /OpenAI 2.*Claude 1.*Gemini 1.*Total 4/);
  assert.equal((await card.locator('.success-label').textContent()).trim(), '3 / 4 = 75%');
  await card.locator('button.expand').click();
  await page.waitForSelector('.channel.open .model-row[data-model="gpt-4o-err500"]');
  const failing = page.locator('.channel.open .model-row[data-model="gpt-4o-err500"]');
  assert.equal(await failing.getAttribute('data-status'), 'fail');
  assert.match(await failing.locator('.m-error').textContent(), /upstream 5xx/);
  // Two runs so far: two ticks in each strip, with time and result on hover.
  assert.equal(await failing.locator('.tick').count(), 2);
  assert.match(await failing.locator('.tick').first().getAttribute('title'), /Failed.*upstream 5xx/);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a run started through the API updates an open dashboard live', async () => {
  const page = await openPage(browser);
  await page.goto(stack.base);
  await page.waitForSelector('.channel');
  await until(page, () => document.querySelector('#live-dot').dataset.state === 'live');
  const id = stack.ids.beta;
  const ticks = () => page.locator(`.channel[data-id="${id}"] .model-row[data-model="gpt-4o-mini"] .tick`).count();
  await page.click(`.channel[data-id="${id}"] button.expand`);
  await page.waitForSelector(`.channel[data-id="${id}"] .model-row[data-model="gpt-4o-mini"]`);
  const before = await ticks();
  const lastRun = await page.textContent(`.channel[data-id="${id}"] .last-run`);
  await stack.run(id);
  await until(page, ([sel, n]) => document.querySelectorAll(sel).length === n,
    [`.channel[data-id="${id}"] .model-row[data-model="gpt-4o-mini"] .tick`, before + 1]);
  await until(page, ([sel, was]) => document.querySelector(sel).textContent !== was, [`.channel[data-id="${id}"] .last-run`, lastRun]);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a lost event stream says so and reconnects', async () => {
  const page = await openPage(browser);
  await page.goto(stack.base);
  await until(page, () => document.querySelector('#live-dot').dataset.state === 'live');
  // A settings change ends every open stream (so a revoked token stops reading).
  await stack.api('PATCH', '/api/admin/settings', { log_max_size_mb: 501 });
  await page.waitForSelector('#live-notice:not([hidden])', { timeout: 5000 });
  await until(page, () => document.querySelector('#live-dot').dataset.state === 'live', undefined, 15000);
  await page.context().close();
});

test('drag to reorder persists across a reload', async () => {
  const page = await openPage(browser);
  await page.goto(stack.base);
  await page.waitForSelector('.channel');
  const start = await names(page);
  const handle = (name) => page.locator('.channel', { has: page.locator('.card-name', { hasText: name }) }).locator('.drag-handle');
  const from = await handle(start[2]).boundingBox();
  const to = await handle(start[0]).boundingBox();
  await page.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
  await page.mouse.down();
  for (let i = 1; i <= 10; i += 1) {
    await page.mouse.move(from.x + from.width / 2, from.y + ((to.y - from.y) * i) / 10 - 4);
    await page.waitForTimeout(30);
  }
  await page.mouse.up();
  const reordered = [start[2], start[0], start[1]];
  await until(page, (want) => [...document.querySelectorAll('#channels .card-name')].map((e) => e.textContent).join() === want, reordered.join());
  await page.waitForSelector('.toast-ok');
  await page.reload();
  await page.waitForSelector('.channel');
  assert.deepEqual(await names(page), reordered);
  // The keyboard moves a card too: the handle with arrow keys.
  await handle(start[2]).focus();
  await page.keyboard.press('ArrowDown');
  await until(page, (want) => [...document.querySelectorAll('#channels .card-name')].map((e) => e.textContent).join() === want, [start[0], start[2], start[1]].join());
  await page.waitForTimeout(300);
  const order = (await stack.api('GET', '/api/targets')).items.map((x) => x.name);
  assert.deepEqual(order, [start[0], start[2], start[1]]);
  // Back to the seeded order for the other tests.
  await stack.api('POST', '/api/targets/reorder', { ids: [stack.ids.alpha, stack.ids.beta, stack.ids.gamma] });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a finger drags a card too (touch events, phone width)', async () => {
  const page = await openPage(browser, { viewport: PHONE });
  await page.goto(stack.base);
  await page.waitForSelector('.channel');
  const start = await names(page);
  const handle = (name) => page.locator('.channel', { has: page.locator('.card-name', { hasText: name }) }).locator('.drag-handle');
  const from = await handle(start[1]).boundingBox();
  const to = await handle(start[0]).boundingBox();
  const cdp = await page.context().newCDPSession(page);
  const touch = (type, y) => cdp.send('Input.dispatchTouchEvent', {
    type, touchPoints: type === 'touchEnd' ? [] : [{ x: from.x + from.width / 2, y }],
  });
  await touch('touchStart', from.y + from.height / 2);
  for (let i = 1; i <= 10; i += 1) {
    await touch('touchMove', from.y + from.height / 2 + ((to.y - from.y) * i) / 10 - 4);
    await page.waitForTimeout(30);
  }
  await touch('touchEnd');
  const want = [start[1], start[0], start[2]];
  await until(page, (w) => [...document.querySelectorAll('#channels .card-name')].map((e) => e.textContent).join() === w, want.join());
  await page.waitForSelector('.toast-ok');
  assert.deepEqual((await stack.api('GET', '/api/targets')).items.map((x) => x.name), want);
  await stack.api('POST', '/api/targets/reorder', { ids: [stack.ids.alpha, stack.ids.beta, stack.ids.gamma] });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('filters and search narrow the cards and stay in the address', async () => {
  const page = await openPage(browser);
  await page.goto(stack.base);
  await page.waitForSelector('.channel');
  await page.fill('#filter-search', 'beta');
  await until(page, () => document.querySelectorAll('#channels .channel').length === 1);
  assert.deepEqual(await names(page), ['beta']);
  assert.match(page.url(), /[?&]q=beta/);
  await page.fill('#filter-search', 'haiku');
  await until(page, () => document.querySelectorAll('#channels .channel').length === 3);
  // A model search opens the cards on the matching models only.
  assert.equal(await page.locator('.channel .model-row[data-model]').count(), 3);
  await page.fill('#filter-search', '');
  await page.selectOption('#filter-status', 'fail');
  await until(page, () => document.querySelectorAll('.channel .model-row[data-model]').length === 3);
  assert.deepEqual(await page.$$eval('.model-row[data-model]', (r) => [...new Set(r.map((x) => x.dataset.model))]), ['gpt-4o-err500']);
  await page.selectOption('#filter-protocol', 'gemini');
  await page.waitForSelector('#no-match:not([hidden])');
  assert.match(page.url(), /status=fail/);
  assert.match(page.url(), /protocol=gemini/);
  // The filters come back from the address.
  await page.goto(`${stack.base}/?protocol=anthropic&q=gamma`);
  await page.waitForSelector('.channel');
  assert.deepEqual(await names(page), ['gamma']);
  assert.equal(await page.inputValue('#filter-protocol'), 'anthropic');
  assert.equal(await page.inputValue('#filter-search'), 'gamma');
  assert.deepEqual(await page.$$eval('.model-row[data-model]', (r) => r.map((x) => x.dataset.model)), ['claude-3-5-haiku']);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('add, edit and delete a channel through the form, with a refused field', async () => {
  const page = await openPage(browser, { allowStatus: [409] });
  await page.goto(stack.base);
  await page.waitForSelector('.channel');
  await page.click('#add-channel');
  await page.fill('#cf-name', 'delta');
  await page.fill('#cf-base_url', 'relay.example');
  await page.fill('#cf-api_key', stack.relayKey);
  await page.click('#cf-submit');
  // Checked in the page as the API checks it, and shown by the field.
  assert.match(await page.textContent('#err-base_url'), /http/);
  assert.equal(await page.getAttribute('#cf-base_url', 'aria-invalid'), 'true');
  await page.fill('#cf-base_url', stack.relay.url);
  await page.fill('#cf-interval_min', '5000');
  await page.click('#cf-submit');
  assert.match(await page.textContent('#err-interval_min'), /1.*1440/);
  await page.fill('#cf-interval_min', '15');
  // A name the API refuses (taken: 409) shows by the name field.
  await page.fill('#cf-name', 'alpha');
  await page.click('#cf-submit');
  await page.waitForSelector('#err-name');
  assert.match(await page.textContent('#err-name'), /already exists/);
  await page.fill('#cf-name', 'delta');
  await page.click('#cf-submit');
  await page.waitForSelector('dialog', { state: 'detached' });
  await until(page, () => [...document.querySelectorAll('.card-name')].some((e) => e.textContent === 'delta'));
  const delta = (await stack.api('GET', '/api/targets')).items.find((x) => x.name === 'delta');
  assert.equal(delta.interval_min, 15);
  const card = `.channel[data-id="${delta.id}"]`;
  // Its first run was started by the form: results arrive live.
  await page.waitForSelector(`${card} .success-label:has-text("3 / 4")`, { timeout: 15000 });

  await page.click(`${card} button.expand`);
  await page.click(`${card} [data-key="edit"]`);
  await page.fill('#cf-name', 'delta-2');
  await page.fill('#cf-timeout_s', '1');
  await page.click('#cf-submit');
  assert.match(await page.textContent('#err-timeout_s'), /3.*300/);
  await page.fill('#cf-timeout_s', '12.5');
  await page.click('#cf-submit');
  await page.waitForSelector('dialog', { state: 'detached' });
  await page.waitForSelector(`${card} .card-name:has-text("delta-2")`);
  const edited = (await stack.api('GET', `/api/targets/${delta.id}`)).item;
  assert.equal(edited.name, 'delta-2');
  assert.equal(edited.timeout_s, 12.5);
  assert.equal(edited.api_key, delta.api_key, 'the masked key sent back keeps the stored key');

  await page.click(`${card} [data-key="delete"]`);
  await page.click('dialog button.btn-danger');
  await page.waitForSelector(card, { state: 'detached' });
  const left = (await stack.api('GET', '/api/targets')).items.map((x) => x.name);
  assert.deepEqual(left, ['alpha', 'beta', 'gamma']);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('without a token the page asks for one, and ?token= is taken then removed', async () => {
  const page = await openPage(browser, { token: null, allowStatus: [401] });
  await page.goto(stack.base);
  await page.waitForSelector('dialog #token-input');
  await page.fill('#token-input', TOKEN);
  await page.click('dialog button[value="ok"]');
  await page.waitForSelector('.channel');
  assert.equal(await page.evaluate(() => localStorage.getItem('apimon.token')), TOKEN);
  await page.context().close();

  const second = await openPage(browser, { token: null });
  await second.goto(`${stack.base}/?token=${TOKEN}&q=alpha`);
  await second.waitForSelector('.channel');
  assert.equal(new URL(second.url()).searchParams.get('token'), null);
  assert.equal(new URL(second.url()).searchParams.get('q'), 'alpha');
  assert.deepEqual(second.problems, []);
  await second.context().close();
});

test('a fresh install shows how to add the first channel, on a phone too', async () => {
  const empty = await startDaemon();
  try {
    const page = await openPage(browser, { viewport: PHONE });
    await page.goto(empty.base);
    await page.waitForSelector('#first-run:not([hidden])');
    assert.ok(await page.isVisible('#first-add'));
    await page.click('#first-add');
    await page.waitForSelector('dialog #cf-name');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  } finally {
    await empty.stop();
  }
});

test('a visitor sees no keys or base URLs and may only run the channels that allow it', async () => {
  await stack.api('PATCH', `/api/admin/channels/${stack.ids.beta}/advanced`, { visitor_channel_actions_enabled: true });
  const page = await openPage(browser, { token: VISITOR });
  await page.goto(stack.base);
  await page.waitForSelector('.channel');
  assert.ok(await page.isHidden('#add-channel'));
  assert.equal(await page.locator('.drag-handle').count(), 0);
  assert.equal(await page.locator('.base-url').count(), 0);
  const alpha = `.channel[data-id="${stack.ids.alpha}"]`;
  const beta = `.channel[data-id="${stack.ids.beta}"]`;
  await page.click(`${alpha} button.expand`);
  await page.waitForSelector(`${alpha} .model-row[data-model]`);
  assert.equal(await page.locator(`${alpha} .card-actions > *`).count(), 0);
  await page.click(`${beta} button.expand`);
  await page.waitForSelector(`${beta} [data-key="run"]`);
  assert.equal(await page.locator(`${beta} [data-key="edit"], ${beta} [data-key="delete"], ${beta} [data-key="toggle"]`).count(), 0);
  assert.equal(await page.getAttribute(`${beta} a[href^="/viewer.html"]`, 'href'), `/viewer.html?target_id=${stack.ids.beta}`);
  const runs = (await stack.api('GET', `/api/targets/${stack.ids.beta}/runs`)).items.length;
  await page.click(`${beta} [data-key="run"]`);
  await page.waitForSelector('.toast-ok');
  for (let i = 0; i < 50 && (await stack.api('GET', `/api/targets/${stack.ids.beta}/runs`)).items.length === runs; i += 1) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal((await stack.api('GET', `/api/targets/${stack.ids.beta}/runs`)).items.length, runs + 1);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
