// English and Simplified Chinese. The language is the stored choice, else the browser's
// (any zh* → zh-CN), else English. Catalogues are modules exporting
// `{ en: {...}, 'zh-CN': {...} }` (one per page area, see i18n/); a page adds its own
// with addCatalogue(). Markup is translated through attributes:
//   data-i18n="key"              → textContent
//   data-i18n-placeholder="key"  → placeholder
//   data-i18n-title="key"        → title
//   data-i18n-aria-label="key"   → aria-label
// Strings take {name} placeholders: t('runs.count', { n: 3 }).
import common from './i18n/common.js';

export const LANGS = [
  { code: 'en', label: 'English' },
  { code: 'zh-CN', label: '简体中文' },
];
const KEY = 'apimon.lang';
const catalogues = { en: {}, 'zh-CN': {} };
/** Keys asked for that the current language lacks (the browser tests read this). */
export const missing = new Set();

function initial() {
  let stored = null;
  try { stored = localStorage.getItem(KEY); } catch { /* storage off */ }
  if (stored && catalogues[stored]) return stored;
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
  for (const l of wanted) {
    const lower = String(l || '').toLowerCase();
    if (lower.startsWith('zh')) return 'zh-CN';
    if (lower.startsWith('en')) return 'en';
  }
  return 'en';
}

let current = 'en';

export function addCatalogue(catalogue) {
  for (const code of Object.keys(catalogues)) Object.assign(catalogues[code], catalogue[code] || {});
}

export function lang() {
  return current;
}

export function t(key, vars) {
  let text = catalogues[current][key];
  if (text === undefined) {
    missing.add(key);
    text = catalogues.en[key] ?? key;
  }
  if (vars) text = text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
  return text;
}

const ATTRS = [
  ['data-i18n-placeholder', 'placeholder'],
  ['data-i18n-title', 'title'],
  ['data-i18n-aria-label', 'aria-label'],
];

/** Translates every marked element under `root`. */
export function applyI18n(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const [data, attr] of ATTRS) {
    for (const el of root.querySelectorAll(`[${data}]`)) el.setAttribute(attr, t(el.getAttribute(data)));
  }
}

/** Switches language, stores the choice, re-translates the page and tells listeners
 * (`langchange` on document) so they re-render what they built from data. */
export function setLang(code) {
  if (!catalogues[code]) return;
  current = code;
  try { localStorage.setItem(KEY, code); } catch { /* storage off */ }
  document.documentElement.lang = code;
  applyI18n(document);
  document.dispatchEvent(new CustomEvent('langchange', { detail: code }));
}

addCatalogue(common);
current = initial();
document.documentElement.lang = current;

// For the browser tests: which keys were missing, and the catalogues to compare with.
window.apimonI18n = { missing, catalogues, lang };
