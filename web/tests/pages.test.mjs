// Every page, at desktop and 390 px wide, light and dark, English and Chinese: loads
// with no console error and no failed request, has no serious axe-core violation, shows
// no untranslated string in Chinese; a screenshot of each lands in target/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, launch, openPage, axeViolations, untranslated, screenshot, DESKTOP, PHONE, PASSWORD } from './harness.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

// name, path (a function of the stack), what shows the page is ready, whether it
// needs the admin session cookie, and what to do before the checks (optional).
export const PAGES = [
  // Opened on its first card, so the screenshots show model rows too.
  { name: 'dashboard', path: () => '/', ready: '.channel', prepare: (page) => page.click('.channel button.expand').then(() => page.waitForSelector('.channel.open .model-row[data-model]')) },
  { name: 'admin-login', path: () => '/admin/login', ready: '#login-form' },
  { name: 'admin', path: () => '/admin.html', ready: '#channels-table tbody tr', session: true },
  { name: 'viewer', path: (s) => `/viewer.html?target_id=${s.ids.alpha}`, ready: '#rows .lv-row' },
  { name: 'analysis', path: (s) => `/analysis.html?target_id=${s.ids.alpha}`, ready: '#chart-rate canvas' },
  { name: 'docs-proxy', path: () => '/docs/proxy', ready: '#example-panel pre' },
];

for (const p of PAGES) {
  test(`${p.name}: every width, theme and language`, async () => {
    for (const [wname, viewport] of [['desktop', DESKTOP], ['390', PHONE]]) {
      for (const theme of ['light', 'dark']) {
        for (const lang of ['en', 'zh-CN']) {
          const page = await openPage(browser, { viewport, theme, lang });
          if (p.session) {
            const r = await page.context().request.post(`${stack.base}/api/admin/login`, { data: { password: PASSWORD } });
            assert.equal(r.status(), 200);
          }
          await page.goto(stack.base + p.path(stack));
          await page.waitForSelector(p.ready, { timeout: 10000 });
          await page.waitForLoadState('networkidle').catch(() => {});
          if (p.prepare) await p.prepare(page);
          const label = `${p.name} ${wname} ${theme} ${lang}`;
          assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), theme, `${label}: theme`);
          assert.equal(await page.evaluate(() => document.documentElement.lang), lang, `${label}: language`);
          if (viewport === PHONE) {
            const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
            assert.ok(overflow <= 1, `${label}: wider than the screen by ${overflow} px`);
          }
          assert.deepEqual(await axeViolations(page), [], `${label}: axe-core`);
          if (lang === 'zh-CN') assert.deepEqual(await untranslated(page), [], `${label}: untranslated`);
          await screenshot(page, `${p.name}-${wname}-${theme}-${lang}`);
          assert.deepEqual(page.problems, [], `${label}: console errors or failed requests`);
          await page.context().close();
        }
      }
    }
  });
}

test('pages carry the security headers, assets an ETag', async () => {
  const resp = await fetch(`${stack.base}/`);
  const csp = resp.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.equal(resp.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(resp.headers.get('referrer-policy'), 'no-referrer');
  const css = await fetch(`${stack.base}/assets/app.css`);
  const etag = css.headers.get('etag');
  assert.ok(etag);
  const again = await fetch(`${stack.base}/assets/app.css`, { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304);
  const admin = await fetch(`${stack.base}/admin.html`, { redirect: 'manual' });
  assert.equal(admin.status, 303);
  assert.equal(admin.headers.get('location'), '/admin/login');
});
