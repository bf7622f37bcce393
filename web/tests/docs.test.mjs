// The proxy docs in a real browser: the examples carry this server's address, the tabs
// switch between curl and the three Python SDKs, a copy button copies, and a proxy key
// lists the models it may use (or, on a build without the proxy, says so).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, launch, openPage, axeViolations } from './harness.mjs';

const MASTER = 'docs-test-master-token-0123456789';
let stack;
let browser;

before(async () => {
  stack = await startStack({ channels: ['alpha'], runs: 1, env: { PROXY_MASTER_TOKEN: MASTER } });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

test('the examples use this server\'s address in every tab', async () => {
  const page = await openPage(browser);
  await page.goto(`${stack.base}/docs/proxy`);
  await page.waitForSelector('#example-panel pre');
  assert.equal(await page.textContent('#base-url'), stack.base);
  const expect = {
    curl: [`curl ${stack.base}/v1/chat/completions`, `${stack.base}/v1/messages`, `${stack.base}/v1beta/models/`],
    openai: [`OpenAI(base_url="${stack.base}/v1"`, 'os.environ["APIMON_PROXY_KEY"]', 'stream=True'],
    anthropic: [`anthropic.Anthropic(base_url="${stack.base}"`, 'client.messages.stream('],
    genai: [`types.HttpOptions(base_url="${stack.base}")`, 'generate_content_stream('],
  };
  for (const [tab, parts] of Object.entries(expect)) {
    await page.click(`#ex-tab-${tab}`);
    assert.equal(await page.getAttribute(`#ex-tab-${tab}`, 'aria-selected'), 'true');
    const code = (await page.$$eval('#example-panel pre', (els) => els.map((e) => e.textContent))).join('\n');
    for (const p of parts) assert.ok(code.includes(p), `${tab}: ${p} in\n${code}`);
    // No key is ever written into an example.
    assert.ok(!code.includes(MASTER));
  }
  assert.deepEqual(await axeViolations(page), []);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('copy puts the example on the clipboard', async () => {
  const page = await openPage(browser);
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: stack.base });
  await page.goto(`${stack.base}/docs/proxy`);
  await page.waitForSelector('#example-panel pre');
  await page.click('#example-panel .copy');
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(copied, await page.textContent('#example-panel pre'));
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a key lists the models it may use and the examples take one', async () => {
  const proxy = await fetch(`${stack.base}/v1/models`, { headers: { Authorization: `Bearer ${MASTER}` } });
  assert.equal(proxy.status, 200);
  const ids = (await proxy.json()).data.map((m) => m.id);
  assert.ok(ids.includes('alpha/gpt-4o-mini'), ids.join(' '));
  const page = await openPage(browser);
  await page.goto(`${stack.base}/docs/proxy`);
  await page.waitForSelector('#example-panel pre');
  await page.fill('#proxy-key', MASTER);
  await page.click('#load-models');
  await page.waitForFunction(() => document.querySelectorAll('#model-select option').length > 1);
  const offered = await page.$$eval('#model-select option', (os) => os.map((o) => o.value));
  assert.deepEqual([...offered].sort(), [...ids].sort());
  await page.selectOption('#model-select', 'alpha/gpt-4o-mini');
  await page.click('#ex-tab-openai');
  assert.match(await page.textContent('#example-panel'), /model="alpha\/gpt-4o-mini"/);
  assert.match(await page.textContent('#models-note'), new RegExp(`${ids.length} models`));
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
