// The browser tests' harness: starts testkit's fake relay and a real apimond (built
// binaries, a temporary data directory, free ports), seeds channels through the HTTP
// API, drives Debian's Chromium through playwright-core, and checks what every page
// must satisfy (no console errors, no failed requests, axe-core, no untranslated
// strings), saving screenshots to target/screenshots/.
//
// Binaries come from $APIMON_BIN_DIR, else $CARGO_TARGET_DIR/debug, else target/debug.
// Chromium from $CHROMIUM, else /usr/bin/chromium.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, mkdirSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, '..', '..');
const BIN = process.env.APIMON_BIN_DIR
  || join(process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(ROOT, 'target'), 'debug');
export const SHOTS = join(ROOT, 'target', 'screenshots');
export const TOKEN = 'web-test-admin-token-0123456789';
export const PASSWORD = 'web-test-panel-password';
const RELAY_KEY = 'sk-fake-upstream-key-0123456789';

function firstLine(child, match, what) {
  return new Promise((resolveLine, reject) => {
    const lines = createInterface({ input: match.stream });
    const timer = setTimeout(() => reject(new Error(`${what} did not start within 20 s`)), 20000);
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code} before it was ready`)));
    lines.on('line', (line) => {
      const found = match.test(line);
      if (found) { clearTimeout(timer); resolveLine(found); }
    });
  });
}

/** Starts a fake relay serving `models` (names ask for misbehaviour: `…err500`). */
export async function startRelay(models) {
  const args = models.flatMap((m) => ['--model', m]);
  const child = spawn(join(BIN, 'fake-upstream'), args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await firstLine(child, { stream: child.stdout, test: (l) => (l.startsWith('listening ') ? l.split(' ')[1] : null) }, 'fake-upstream');
  return { url, stop: () => child.kill('SIGTERM') };
}

/** Starts apimond with a known admin token and panel password. */
export async function startDaemon(env = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'apimon-web-'));
  const child = spawn(join(BIN, 'apimond'), [], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      ...process.env,
      DATA_DIR: join(dir, 'data'),
      APIMON_SOCKET: join(dir, 'apimond.sock'),
      PORT: '0',
      HOST: '127.0.0.1',
      API_MONITOR_TOKEN: TOKEN,
      ADMIN_PANEL_PASSWORD: PASSWORD,
      LOG_FORMAT: 'json',
      RUST_LOG: 'warn,apimond=info',
      ...env,
    },
  });
  const address = await firstLine(child, {
    stream: child.stderr,
    test: (l) => { try { return JSON.parse(l).fields?.address || null; } catch { return null; } },
  }, 'apimond');
  const base = `http://${address}`;
  const daemon = {
    base,
    /** A JSON API call with the admin token. */
    async api(method, path, body) {
      const resp = await fetch(base + path, {
        method,
        headers: { Authorization: `Bearer ${TOKEN}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await resp.text();
      const data = text ? JSON.parse(text) : null;
      if (!resp.ok) throw new Error(`${method} ${path}: ${resp.status} ${text}`);
      return data;
    },
    /** Starts a run of a target and waits until it is over. */
    async run(id) {
      await daemon.api('POST', `/api/targets/${id}/run`);
      for (let i = 0; i < 200; i += 1) {
        const t = (await daemon.api('GET', `/api/targets/${id}`)).item;
        if (!t.running && t.last_run_at) return t;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`run of target ${id} did not finish`);
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => { if (child.exitCode !== null) r(); else child.once('exit', r); });
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return daemon;
}

/**
 * The usual stack: one relay with passing and failing models, a daemon, and three
 * channels (alpha, beta, gamma) each run twice so they have history.
 */
export async function startStack({ channels = ['alpha', 'beta', 'gamma'], runs = 2, env } = {}) {
  const relay = await startRelay(['gpt-4o-mini', 'claude-3-5-haiku', 'gemini-2.0-flash', 'gpt-4o-err500']);
  const daemon = await startDaemon(env);
  const ids = {};
  for (const name of channels) {
    const { item } = await daemon.api('POST', '/api/targets', { name, base_url: relay.url, api_key: RELAY_KEY, interval_min: 60 });
    ids[name] = item.id;
    for (let i = 0; i < runs; i += 1) await daemon.run(item.id);
  }
  return {
    ...daemon, relay, ids, relayKey: RELAY_KEY,
    async stop() { await daemon.stop(); relay.stop(); },
  };
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
}

export const DESKTOP = { width: 1360, height: 900 };
export const PHONE = { width: 390, height: 844 };

/**
 * A new page in its own context. `token`: put the admin token in localStorage first;
 * `theme`: 'light' | 'dark' (the stored choice); `lang`: 'en' | 'zh-CN' (the
 * browser's language, so the page picks it on its own). Collects console errors and
 * failed requests in page.problems. `headers` are sent with every request.
 */
export async function openPage(browser, { viewport = DESKTOP, theme = 'light', lang = 'en', token = TOKEN, allowStatus = [], headers = {} } = {}) {
  const context = await browser.newContext({
    viewport,
    locale: lang,
    colorScheme: theme,
    hasTouch: viewport.width < 600,
    isMobile: false,
    extraHTTPHeaders: { 'Accept-Language': lang === 'zh-CN' ? 'zh-CN,zh;q=0.9' : 'en-US,en;q=0.9', ...headers },
  });
  await context.addInitScript(([tok, th]) => {
    if (tok && !localStorage.getItem('apimon.token.set')) {
      localStorage.setItem('apimon.token', tok);
      localStorage.setItem('apimon.token.set', '1');
    }
    if (th) localStorage.setItem('apimon.theme', th);
  }, [token, theme]);
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    // The browser logs every 4xx; those a test expects (a refused field) are no fault.
    const status = /status of (\d{3})/.exec(msg.text());
    if (status && allowStatus.includes(Number(status[1]))) return;
    page.problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => page.problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => {
    // An event stream closed by navigation or by the test is not a failure, nor is a
    // load the browser itself abandoned when the page moved on (net::ERR_ABORTED, e.g. an
    // icon still loading when the login sends the browser to the panel); a server that
    // fails a request shows as a reset/empty response or as an HTTP status above.
    if (req.url().includes('/api/events')) return;
    if (req.failure()?.errorText === 'net::ERR_ABORTED') return;
    page.problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`);
  });
  page.on('response', (resp) => {
    if (resp.status() >= 400 && !allowStatus.includes(resp.status())) page.problems.push(`HTTP ${resp.status()}: ${resp.url()}`);
  });
  return page;
}

/** axe-core's serious and critical violations on the page as it is now. */
export async function axeViolations(page) {
  const source = readFileSync(join(ROOT, 'web', 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  // Evaluated through DevTools, so the page's CSP (no inline script) does not apply.
  await page.evaluate(source);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
}

/**
 * Strings of the English catalogue shown on a Chinese page, and keys either catalogue
 * lacks. Text nodes are compared whole, so a product name inside a sentence is fine.
 */
export async function untranslated(page) {
  return page.evaluate(() => {
    const { catalogues, missing } = window.apimonI18n;
    const en = catalogues.en;
    const zh = catalogues['zh-CN'];
    const problems = [...missing].map((k) => `missing key ${k}`);
    for (const k of Object.keys(en)) if (!(k in zh)) problems.push(`zh-CN lacks ${k}`);
    for (const k of Object.keys(zh)) if (!(k in en)) problems.push(`en lacks ${k}`);
    for (const el of document.querySelectorAll('[data-i18n]')) {
      if (!(el.dataset.i18n in zh)) problems.push(`data-i18n key ${el.dataset.i18n} not in zh-CN`);
    }
    const english = new Set(Object.keys(en).filter((k) => en[k] !== zh[k]).map((k) => en[k].trim()));
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const text = n.textContent.trim();
      if (text && english.has(text) && n.parentElement.closest('[hidden]') === null) problems.push(`English text shown: "${text}"`);
    }
    for (const el of document.querySelectorAll('[placeholder], [aria-label], [title]')) {
      for (const attr of ['placeholder', 'aria-label', 'title']) {
        const v = el.getAttribute(attr);
        if (v && english.has(v.trim())) problems.push(`English ${attr}: "${v}"`);
      }
    }
    return problems;
  });
}

export async function screenshot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Waits until `predicate` (a function run in the page) is true. */
export async function until(page, predicate, arg, timeout = 10000) {
  await page.waitForFunction(predicate, arg, { timeout });
}
