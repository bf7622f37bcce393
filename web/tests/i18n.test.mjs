// The catalogues without a browser: every catalogue has the same keys in English and
// Simplified Chinese, with the same {placeholders}; every key the pages' markup
// (data-i18n*) and scripts (t('…')) name exists in both. The browser tests check the
// rendered Chinese pages on top of this.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './harness.mjs';

const WEB = join(ROOT, 'web');
const I18N = join(WEB, 'assets', 'js', 'i18n');

function files(dir, ext) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path, ext);
    return path.endsWith(ext) ? [path] : [];
  });
}

async function catalogues() {
  const all = { en: {}, 'zh-CN': {} };
  const each = [];
  for (const file of files(I18N, '.js')) {
    const { default: c } = await import(pathToFileURL(file));
    each.push([file, c]);
    Object.assign(all.en, c.en);
    Object.assign(all['zh-CN'], c['zh-CN']);
  }
  return { all, each };
}

const placeholders = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test('each catalogue has the same keys and placeholders in both languages', async () => {
  const { each } = await catalogues();
  assert.ok(each.length >= 3);
  for (const [file, c] of each) {
    assert.deepEqual(Object.keys(c['zh-CN']).sort(), Object.keys(c.en).sort(), file);
    for (const [k, v] of Object.entries(c.en)) {
      assert.deepEqual(placeholders(c['zh-CN'][k]), placeholders(v), `${file}: ${k}`);
      assert.ok(c['zh-CN'][k].trim(), `${file}: ${k} is empty in zh-CN`);
    }
  }
});

test('every key the markup and the scripts name is in both catalogues', async () => {
  const { all } = await catalogues();
  const missing = [];
  for (const file of files(join(WEB, 'pages'), '.html')) {
    const html = readFileSync(file, 'utf8');
    for (const m of html.matchAll(/data-i18n(?:-placeholder|-title|-aria-label)?="([^"]+)"/g)) {
      for (const lang of ['en', 'zh-CN']) if (!(m[1] in all[lang])) missing.push(`${file}: ${m[1]} (${lang})`);
    }
  }
  for (const file of files(join(WEB, 'assets', 'js'), '.js')) {
    if (file.startsWith(I18N)) continue;
    const src = readFileSync(file, 'utf8');
    // Literal keys only: t('dash.run'), t("x.y", …). Keys built at run time
    // (t(`status.${s}`)) are checked by the browser tests on the rendered pages.
    for (const m of src.matchAll(/\bt\(\s*'([a-z0-9_.-]+)'/gi)) {
      for (const lang of ['en', 'zh-CN']) if (!(m[1] in all[lang])) missing.push(`${file}: ${m[1]} (${lang})`);
    }
  }
  assert.deepEqual(missing, []);
});
