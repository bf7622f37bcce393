// The proxy docs (/docs/proxy): how to call apimon's proxy, with curl and Python SDK
// examples filled in with this server's address (from `location`) and, once a proxy
// key is entered, a model that key may use (GET /v1/models, asked with that key only).
import { h, $, clear } from './dom.js';
import { t, addCatalogue } from './i18n.js';
import { initPage } from './page.js';
import docsStrings from './i18n/docs.js';
import viewerStrings from './i18n/viewer.js';
import { copyButton } from './probe-view.js';

addCatalogue(docsStrings);
addCatalogue(viewerStrings);

const KEY_STORE = 'apimon.proxyKey';
const PLACEHOLDER = '<channel>/<model>';
const state = { models: [], model: PLACEHOLDER, tab: 'curl', note: null };

const base = () => window.location.origin;

function storedKey() {
  try { return sessionStorage.getItem(KEY_STORE) || ''; } catch { return ''; }
}
function storeKey(value) {
  try { if (value) sessionStorage.setItem(KEY_STORE, value); else sessionStorage.removeItem(KEY_STORE); } catch { /* off */ }
}

/** A string as a JSON/Python literal (both accept JSON's double-quoted strings). */
const q = (s) => JSON.stringify(s);

// ---- the examples --------------------------------------------------------------------

function examples() {
  const b = base();
  const m = state.model;
  const gemini = state.models.find((x) => /gemini/i.test(x)) || (m === PLACEHOLDER ? '<channel>/gemini-2.5-flash' : m);
  const claude = state.models.find((x) => /claude/i.test(x)) || (m === PLACEHOLDER ? '<channel>/claude-sonnet-4-5' : m);
  const body = (obj) => JSON.stringify(obj).replace(/'/g, "'\\''");
  return {
    curl: [
      [t('docs.example.models'), `curl ${b}/v1/models \\\n  -H "Authorization: Bearer $APIMON_PROXY_KEY"`],
      [t('docs.example.chat'), `curl ${b}/v1/chat/completions \\\n  -H "Authorization: Bearer $APIMON_PROXY_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d '${body({ model: m, messages: [{ role: 'user', content: 'Hello' }] })}'`],
      [t('docs.example.chat_stream'), `curl -N ${b}/v1/chat/completions \\\n  -H "Authorization: Bearer $APIMON_PROXY_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d '${body({ model: m, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Hello' }] })}'`],
      [t('docs.example.responses'), `curl ${b}/v1/responses \\\n  -H "Authorization: Bearer $APIMON_PROXY_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d '${body({ model: m, input: 'Hello' })}'`],
      [t('docs.example.messages'), `curl ${b}/v1/messages \\\n  -H "x-api-key: $APIMON_PROXY_KEY" \\\n  -H "anthropic-version: 2023-06-01" \\\n  -H "Content-Type: application/json" \\\n  -d '${body({ model: claude, max_tokens: 256, messages: [{ role: 'user', content: 'Hello' }] })}'`],
      [t('docs.example.gemini'), `curl "${b}/v1beta/models/${gemini}:generateContent" \\\n  -H "x-goog-api-key: $APIMON_PROXY_KEY" \\\n  -H "Content-Type: application/json" \\\n  -d '${body({ contents: [{ parts: [{ text: 'Hello' }] }] })}'`],
    ],
    openai: [
      [t('docs.example.install'), 'pip install openai'],
      [t('docs.example.plain'), `import os
from openai import OpenAI

client = OpenAI(base_url=${q(`${b}/v1`)}, api_key=os.environ["APIMON_PROXY_KEY"])
reply = client.chat.completions.create(
    model=${q(m)},
    messages=[{"role": "user", "content": "Hello"}],
)
print(reply.choices[0].message.content)`],
      [t('docs.example.stream'), `stream = client.chat.completions.create(
    model=${q(m)},
    messages=[{"role": "user", "content": "Hello"}],
    stream=True,
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)`],
      [t('docs.example.responses'), `response = client.responses.create(model=${q(m)}, input="Hello")
print(response.output_text)`],
    ],
    anthropic: [
      [t('docs.example.install'), 'pip install anthropic'],
      [t('docs.example.plain'), `import os
import anthropic

client = anthropic.Anthropic(base_url=${q(b)}, api_key=os.environ["APIMON_PROXY_KEY"])
message = client.messages.create(
    model=${q(claude)},
    max_tokens=256,
    messages=[{"role": "user", "content": "Hello"}],
)
print(message.content[0].text)`],
      [t('docs.example.stream'), `with client.messages.stream(
    model=${q(claude)},
    max_tokens=256,
    messages=[{"role": "user", "content": "Hello"}],
) as stream:
    for text in stream.text_stream:
        print(text, end="", flush=True)`],
    ],
    genai: [
      [t('docs.example.install'), 'pip install google-genai'],
      [t('docs.example.plain'), `import os
from google import genai
from google.genai import types

client = genai.Client(
    api_key=os.environ["APIMON_PROXY_KEY"],
    http_options=types.HttpOptions(base_url=${q(b)}),
)
response = client.models.generate_content(model=${q(gemini)}, contents="Hello")
print(response.text)`],
      [t('docs.example.stream'), `for chunk in client.models.generate_content_stream(model=${q(gemini)}, contents="Hello"):
    print(chunk.text, end="", flush=True)`],
    ],
  };
}

function codeBlock(title, code) {
  return h('figure', { class: 'dx-example' },
    h('figcaption', { class: 'dx-example-title', text: title }),
    h('div', { class: 'dx-code' },
      copyButton(code),
      h('pre', { tabindex: '0' }, h('code', { text: code }))));
}

const TABS = ['curl', 'openai', 'anthropic', 'genai'];

function renderExamples() {
  const all = examples();
  $('#env-line').textContent = 'export APIMON_PROXY_KEY=sk-…';
  const tabs = clear($('#example-tabs'));
  for (const key of TABS) {
    tabs.append(h('button', {
      type: 'button', role: 'tab', id: `ex-tab-${key}`, class: 'dx-tab',
      'aria-selected': String(key === state.tab), 'aria-controls': 'example-panel',
      tabindex: key === state.tab ? '0' : '-1', text: t(`docs.tab.${key}`),
      onclick: () => { state.tab = key; renderExamples(); $(`#ex-tab-${key}`).focus(); },
      onkeydown: (e) => {
        const d = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
        if (!d) return;
        e.preventDefault();
        state.tab = TABS[(TABS.indexOf(state.tab) + d + TABS.length) % TABS.length];
        renderExamples();
        $(`#ex-tab-${state.tab}`).focus();
      },
    }));
  }
  const panel = clear($('#example-panel'));
  panel.setAttribute('aria-labelledby', `ex-tab-${state.tab}`);
  for (const [title, code] of all[state.tab]) panel.append(codeBlock(title, code));
}

function renderStatic() {
  const b = base();
  for (const el of document.querySelectorAll('[data-base]')) el.textContent = b;
  $('#pinned-rule').textContent = t('docs.routing.pinned', { example: state.models.find((x) => x.includes('/')) || PLACEHOLDER });
}

// ---- the key and its models ----------------------------------------------------------

function renderModels() {
  const select = clear($('#model-select'));
  if (!state.models.length) {
    select.append(h('option', { value: PLACEHOLDER, text: t('docs.models.placeholder') }));
  }
  for (const m of state.models) select.append(h('option', { value: m, text: m }));
  select.value = state.model;
  const note = $('#models-note');
  note.textContent = state.note ? t(state.note.key, state.note.vars) : '';
  note.className = `hint ${state.note?.bad ? 'dx-bad' : ''}`;
}

async function loadModels() {
  const key = $('#proxy-key').value.trim();
  storeKey(key);
  if (!key) return;
  const button = $('#load-models');
  button.disabled = true;
  try {
    const resp = await fetch('/v1/models', { headers: { Authorization: `Bearer ${key}`, Accept: 'application/json' } });
    const text = await resp.text();
    let data = null;
    try { data = JSON.parse(text); } catch { data = null; }
    if (resp.status === 404) {
      state.models = [];
      state.note = { key: 'docs.models.no_proxy', bad: true };
    } else if (resp.status === 401 || resp.status === 403 || resp.status === 429) {
      state.models = [];
      const detail = data?.error?.message || data?.detail || text || resp.statusText;
      state.note = { key: 'docs.models.refused', vars: { detail }, bad: true };
    } else if (!resp.ok) {
      state.models = [];
      state.note = { key: 'docs.models.failed', vars: { detail: data?.error?.message || data?.detail || resp.statusText }, bad: true };
    } else {
      state.models = (data?.data || []).map((x) => x.id).filter(Boolean)
        // Pinned ids (channel/model) first: they say where a request goes.
        .sort((a, b) => (b.includes('/') - a.includes('/')) || a.localeCompare(b));
      state.note = state.models.length
        ? { key: 'docs.models.count', vars: { n: state.models.length } }
        : { key: 'docs.models.none', bad: true };
    }
  } catch (e) {
    state.models = [];
    state.note = { key: 'docs.models.failed', vars: { detail: e.message }, bad: true };
  } finally {
    button.disabled = false;
  }
  state.model = state.models.includes(state.model) ? state.model : (state.models[0] || PLACEHOLDER);
  renderModels();
  renderStatic();
  renderExamples();
}

function main() {
  initPage();
  $('#key-form').addEventListener('submit', (e) => { e.preventDefault(); loadModels(); });
  $('#model-select').addEventListener('change', (e) => { state.model = e.target.value; renderExamples(); renderStatic(); });
  document.addEventListener('langchange', () => {
    renderModels();
    renderStatic();
    renderExamples();
  });
  const key = storedKey();
  if (key) $('#proxy-key').value = key;
  renderModels();
  renderStatic();
  renderExamples();
  if (key) loadModels();
}

main();
