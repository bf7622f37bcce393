// The admin login and panel in a real browser: sign in with the panel password and with
// the admin token, the back-off after wrong passwords, a settings change that persists,
// the admin token's reveal, a random proxy master token, model selection saved, the
// visitor-actions switch, logout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, launch, openPage, PASSWORD, TOKEN } from './harness.mjs';

let stack;
let browser;

before(async () => {
  // Loopback is a trusted proxy here, so a test can be another client by X-Forwarded-For.
  stack = await startStack({ channels: ['alpha', 'beta'], runs: 1, env: { TRUSTED_PROXIES: '127.0.0.1/32' } });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

async function signIn(page, secret) {
  await page.goto(`${stack.base}/admin/login`);
  await page.fill('#password', secret);
  await page.click('#sign-in');
  await page.waitForURL(/\/admin\.html$/);
  await page.waitForSelector('#channels-table tbody tr');
}

test('the panel sends visitors to the login, which takes the panel password', async () => {
  const page = await openPage(browser, { token: null });
  await page.goto(`${stack.base}/admin.html`);
  await page.waitForURL(/\/admin\/login$/);
  await signIn(page, PASSWORD);
  assert.deepEqual(page.problems, []);

  await page.click('#logout');
  await page.waitForURL(/\/admin\/login$/);
  await page.goto(`${stack.base}/admin.html`);
  await page.waitForURL(/\/admin\/login$/);
  await page.context().close();
});

test('the login takes the admin token too, and its session serves the dashboard', async () => {
  // A visitor token stored earlier gives way to the session.
  const page = await openPage(browser, { token: 'a-stored-visitor-token' });
  await signIn(page, TOKEN);
  assert.equal(await page.evaluate(() => localStorage.getItem('apimon.token')), null);
  await page.goto(stack.base);
  await page.waitForSelector('.channel');
  assert.ok(await page.isVisible('#add-channel'), 'admin controls through the session cookie');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('wrong passwords are refused and then slowed down', async () => {
  // Another client (by X-Forwarded-For), so its back-off does not slow the other tests.
  const page = await openPage(browser, { token: null, allowStatus: [401, 429], headers: { 'X-Forwarded-For': '198.51.100.7' } });
  await page.goto(`${stack.base}/admin/login`);
  // The first misses are answered at once…
  for (let i = 0; i < 4; i += 1) {
    await page.fill('#password', `not-the-password-${i}`);
    await page.click('#sign-in');
    await page.waitForSelector('#err-password');
    assert.match(await page.textContent('#err-password'), /Wrong password/);
  }
  // …then the client must wait, and the page counts down with the button off.
  await page.fill('#password', 'still-not-it');
  await page.click('#sign-in');
  await page.waitForSelector('#login-wait:not([hidden])');
  assert.match(await page.textContent('#login-wait'), /Try again in \d+ s/);
  assert.match(await page.textContent('#err-password'), /Too many failed attempts/);
  assert.ok(await page.isDisabled('#sign-in'));
  await page.context().close();
});

test('a settings change is saved and still there after a reload', async () => {
  const page = await openPage(browser, { token: null });
  await signIn(page, PASSWORD);
  await page.waitForSelector('#set-default_interval_min');
  // Pinned by the environment: read-only, naming the variable.
  assert.ok(await page.isDisabled('#set-api_monitor_token_admin'));
  assert.match(await page.textContent('#settings'), /API_MONITOR_TOKEN/);
  // Reveal shows the whole admin token.
  await page.locator('#set-api_monitor_token_admin').locator('xpath=..').locator('button').first().click();
  await page.waitForFunction((tok) => document.querySelector('#set-api_monitor_token_admin').value === tok, TOKEN);
  assert.equal(await page.getAttribute('#set-api_monitor_token_admin', 'type'), 'text');

  await page.fill('#set-default_interval_min', '2000');
  await page.click('#settings-save');
  await page.waitForSelector('#err-default_interval_min');
  await page.fill('#set-default_interval_min', '45');
  await page.check('#set-visitor_mode_enabled', { force: true });
  await page.click('[data-key="random"]');
  const master = await page.inputValue('#set-proxy_master_token');
  assert.match(master, /^sk-[A-Za-z0-9]{40}$/);
  await page.click('#settings-save');
  await page.waitForSelector('#settings-status:has-text("Settings saved")');
  await page.reload();
  await page.waitForSelector('#set-default_interval_min');
  assert.equal(await page.inputValue('#set-default_interval_min'), '45');
  assert.ok(await page.isChecked('#set-visitor_mode_enabled'));
  const stored = (await stack.api('GET', '/api/admin/settings')).item;
  assert.equal(stored.default_interval_min, 45);
  assert.equal(stored.visitor_mode_enabled, true);
  const revealed = await stack.api('POST', '/api/admin/settings/reveal', { field: 'proxy_master_token' });
  assert.equal(revealed.item.value, master);
  // Back as it was for the other tests.
  await stack.api('PATCH', '/api/admin/settings', { visitor_mode_enabled: false, default_interval_min: 30 });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('model selection and the visitor-actions switch are saved', async () => {
  const page = await openPage(browser, { token: null });
  await signIn(page, PASSWORD);
  const id = stack.ids.beta;
  const row = `#channels-table tr[data-id="${id}"]`;
  assert.match(await page.textContent(`${row} .sel-summary`), /All models/);
  await page.click(`${row} [data-key="models"]`);
  await page.waitForSelector('dialog .check-item');
  assert.equal(await page.locator('dialog .check-item').count(), 4);
  await page.uncheck('#ms-all-mode', { force: true });
  await page.click('#ms-select-none');
  await page.fill('#ms-search', 'gpt');
  assert.equal(await page.locator('dialog .check-item:not([hidden])').count(), 2);
  await page.click('#ms-select-all');
  await page.fill('#ms-search', '');
  await page.click('#ms-save');
  await page.waitForSelector('dialog', { state: 'detached' });
  await page.waitForSelector(`${row} .sel-summary:has-text("2 selected")`);
  const models = (await stack.api('GET', `/api/admin/channels/${id}/models`)).item;
  assert.deepEqual([...models.selected_models].sort(), ['gpt-4o-err500', 'gpt-4o-mini']);

  await page.check(`${row} input[type="checkbox"]`, { force: true });
  await page.waitForSelector('.toast-ok');
  const channel = (await stack.api('GET', '/api/admin/channels')).items.find((c) => c.id === id);
  assert.equal(channel.visitor_channel_actions_enabled, true);
  await page.reload();
  await page.waitForSelector(`${row} .sel-summary:has-text("2 selected")`);
  assert.ok(await page.isChecked(`${row} input[type="checkbox"]`));
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a proxy key is created with its secret shown once, used through the proxy, edited and revoked; its usage shows', async () => {
  const page = await openPage(browser, { token: null, allowStatus: [400] });
  await signIn(page, PASSWORD);
  await page.waitForSelector('#key-create');
  await page.click('#key-create');
  await page.fill('#kf-name', 'team-web');
  await page.fill('#kf-rpm_limit', '0');
  await page.click('#kf-submit');
  assert.match(await page.textContent('#err-rpm_limit'), /1 or more/);
  await page.fill('#kf-rpm_limit', '30');
  await page.check(`#kf-allowed_target_ids input[value="${stack.ids.alpha}"]`);
  await page.fill('#kf-allowed_models', 'gpt-4o-mini');
  await page.click('#kf-submit');
  // Refused by the API, shown by the field it names.
  await page.waitForSelector('#err-allowed_models');
  await page.fill('#kf-allowed_models', 'alpha/gpt-4o-mini');
  await page.click('#kf-submit');
  await page.waitForSelector('#new-key');
  const secret = await page.inputValue('#new-key');
  assert.match(secret, /^sk-\w{32,}$/);
  await page.click('#secret-done');
  const row = page.locator('#keys-table tbody tr', { hasText: 'team-web' });
  await row.waitFor();
  assert.match(await row.textContent(), new RegExp(`${secret.slice(0, 12)}…`));
  assert.match(await row.textContent(), /30 requests\/min/);
  // Never again: not in the page, not in the API.
  await page.reload();
  await row.waitFor();
  assert.ok(!(await page.content()).includes(secret));
  assert.ok(!JSON.stringify(await stack.api('GET', '/api/proxy/keys')).includes(secret));
  const item = (await stack.api('GET', '/api/proxy/keys')).items.find((k) => k.name === 'team-web');
  assert.deepEqual(item.allowed_target_ids, [stack.ids.alpha]);
  assert.deepEqual(item.allowed_models, ['alpha/gpt-4o-mini']);

  // The key reaches the proxy; its requests show in the usage panel below.
  for (let i = 0; i < 2; i += 1) {
    const r = await fetch(`${stack.base}/v1/chat/completions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'alpha/gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(r.status, 200, await r.text());
  }

  await row.locator('[data-key="edit"]').click();
  await page.fill('#kf-daily_token_budget', '100000');
  await page.click('#kf-submit');
  await page.waitForSelector('dialog', { state: 'detached' });
  await page.waitForSelector('#keys-table tr:has-text("100,000 tokens/day")');
  await row.locator('[data-key="revoke"]').click();
  await page.click('dialog button.btn-danger');
  await page.waitForSelector('#keys-table tr:has-text("team-web"):has-text("Revoked")');
  assert.ok((await stack.api('GET', '/api/proxy/keys')).items.find((k) => k.name === 'team-web').revoked_at);
  // The usage panel draws its chart for the chosen range.
  await page.click('[data-range="7d"]');
  await page.waitForSelector('#usage-chart canvas');
  // Usage rows are written in batches: the panel shows them once stored.
  const used = page.locator('#usage-by-key tbody tr', { hasText: 'team-web' });
  for (let i = 0; i < 20 && !(await used.count()); i += 1) {
    await page.waitForTimeout(500);
    await page.click('[data-range="24h"]');
    await page.click('[data-range="7d"]');
  }
  assert.equal((await used.locator('td').nth(1).textContent()).trim(), '2');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
