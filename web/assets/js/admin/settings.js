// The admin panel's settings: tokens (masked, with reveal and copy, the proxy master
// token with a random generator), visitor mode, base URLs for visitors, log cleanup,
// default interval. Only changed fields are sent; a setting pinned by the environment
// or the config file is read-only and names its variable. After a save the settings
// are read back from the API, so what shows is what is stored.
import { $, h, clear, icon } from '../dom.js';
import { t } from '../i18n.js';
import { api } from '../api.js';
import { showFormError, clearFormErrors, toast } from '../page.js';
import { copyText } from './clipboard.js';

// name, kind, bounds; `secret` fields may be revealed and copied.
const FIELDS = [
  { name: 'api_monitor_token_admin', kind: 'secret', min: 8, max: 256, required: true, icon: 'key' },
  { name: 'admin_panel_password', kind: 'secret', min: 8, max: 256, required: true, icon: 'lock' },
  { name: 'visitor_mode_enabled', kind: 'bool', icon: 'user' },
  { name: 'api_monitor_token_visitor', kind: 'secret', min: 8, max: 256, icon: 'user' },
  { name: 'visitor_show_base_url', kind: 'bool', icon: 'server' },
  { name: 'proxy_master_token', kind: 'secret', min: 8, max: 256, random: true, icon: 'bolt' },
  { name: 'log_cleanup_enabled', kind: 'bool', icon: 'trash' },
  { name: 'log_max_size_mb', kind: 'int', min: 0, max: 102400, icon: 'logs' },
  { name: 'default_interval_min', kind: 'int', min: 1, max: 1440, icon: 'clock' },
];

let loaded = null; // { item, read_only }

function randomKey() {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = crypto.getRandomValues(new Uint8Array(48));
  // 62 * 4 = 248: drop 248–255 so every character is equally likely.
  const chars = [...bytes].filter((b) => b < 248).map((b) => alphabet[b % 62]);
  while (chars.length < 40) chars.push(alphabet[crypto.getRandomValues(new Uint8Array(1))[0] % 62]);
  return `sk-${chars.slice(0, 40).join('')}`;
}

async function reveal(name) {
  const r = await api('/api/admin/settings/reveal', { method: 'POST', body: { field: name } });
  return r.item.value;
}

function secretControl(f, value, pinned) {
  const id = `set-${f.name}`;
  const input = h('input', {
    id, name: f.name, type: 'password', class: 'input mono', autocomplete: 'off', spellcheck: 'false',
    disabled: !!pinned, dataset: { original: value },
  });
  input.value = value;
  let shown = false;
  const revealBtn = h('button', {
    type: 'button', class: 'btn btn-ghost btn-icon', 'aria-label': t('action.reveal'), title: t('action.reveal'), 'aria-pressed': 'false',
    disabled: !loaded.item[`${f.name}_set`],
    onclick: async () => {
      try {
        if (!shown) {
          if (input.value === input.dataset.original && loaded.item[`${f.name}_set`]) {
            const full = await reveal(f.name);
            input.value = full;
            input.dataset.original = full;
          }
          input.type = 'text';
        } else input.type = 'password';
        shown = !shown;
        revealBtn.setAttribute('aria-pressed', String(shown));
        revealBtn.setAttribute('aria-label', t(shown ? 'action.hide' : 'action.reveal'));
      } catch (e) { toast(e.detail || e.message, 'error'); }
    },
  }, icon('eye'));
  const copyBtn = h('button', {
    type: 'button', class: 'btn btn-ghost btn-icon', 'aria-label': t('action.copy'), title: t('action.copy'),
    disabled: !loaded.item[`${f.name}_set`],
    onclick: async () => {
      try {
        const text = input.value === input.dataset.original && loaded.item[`${f.name}_set`] && input.value.includes('…')
          ? await reveal(f.name) : input.value;
        await copyText(text);
        toast(t('action.copied'), 'ok', 1500);
      } catch (e) { toast(e.detail || e.message, 'error'); }
    },
  }, icon('copy'));
  return h('div', null,
    h('div', { class: 'input-group' }, input, h('div', { class: 'input-actions' }, revealBtn, copyBtn)),
    f.random && !pinned ? h('button', {
      type: 'button', class: 'btn btn-sm random-btn', dataset: { key: 'random' },
      onclick: () => { input.value = randomKey(); input.type = 'text'; shown = true; input.dispatchEvent(new Event('input')); },
    }, icon('shuffle', 'icon-sm'), t('admin.set.random')) : null);
}

function fieldBox(f) {
  const value = loaded.item[f.name];
  const pinned = loaded.read_only?.[f.name];
  const id = `set-${f.name}`;
  let control;
  if (f.kind === 'bool') {
    control = h('label', { class: 'switch' },
      h('input', { type: 'checkbox', id, name: f.name, checked: !!value, disabled: !!pinned }),
      h('span', { class: 'track', 'aria-hidden': 'true' }),
      h('span', { text: t(`admin.set.${f.name}.switch`) }));
  } else if (f.kind === 'int') {
    control = h('input', { id, name: f.name, type: 'number', class: 'input', min: f.min, max: f.max, step: 1, disabled: !!pinned });
    control.value = value;
  } else {
    control = secretControl(f, value || '', pinned);
  }
  return h('div', { class: 'setting field' },
    h(f.kind === 'bool' ? 'div' : 'label', { class: 'label eyebrow row', for: f.kind === 'bool' ? null : id },
      icon(f.icon, 'icon-sm'), h('span', { text: t(`admin.set.${f.name}`) })),
    control,
    h('p', { class: 'hint', text: t(`admin.set.${f.name}.hint`) }),
    pinned ? h('p', { class: 'hint pinned' }, icon('lock', 'icon-sm'), ' ', t('admin.set.pinned', { variable: pinned })) : null);
}

function render() {
  const box = clear($('#settings-fields'));
  for (const f of FIELDS) box.append(fieldBox(f));
}

export async function loadSettings() {
  loaded = await api('/api/admin/settings');
  render();
}

/** The changed fields, checked against the API's bounds; throws { field, detail }. */
function changes(form) {
  const body = {};
  for (const f of FIELDS) {
    const el = form.elements[f.name];
    if (!el || el.disabled) continue;
    if (f.kind === 'bool') {
      if (el.checked !== !!loaded.item[f.name]) body[f.name] = el.checked;
    } else if (f.kind === 'int') {
      const n = Number(el.value);
      if (el.value === '' || !Number.isInteger(n) || n < f.min || n > f.max) {
        throw { field: f.name, detail: `${f.name}: ${t('form.err.range', { min: f.min, max: f.max })}` };
      }
      if (n !== loaded.item[f.name]) body[f.name] = n;
    } else {
      const v = el.value.trim();
      if (v === el.dataset.original) continue;
      if (v === '' && f.required) throw { field: f.name, detail: `${f.name}: ${t('form.err.required')}` };
      if (v !== '' && ([...v].length < f.min || [...v].length > f.max)) {
        throw { field: f.name, detail: `${f.name}: ${t('form.err.length', { min: f.min, max: f.max, len: [...v].length })}` };
      }
      body[f.name] = v;
    }
  }
  return body;
}

export function initSettings() {
  const form = $('#settings-form');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFormErrors(form);
    const status = $('#settings-status');
    let body;
    try { body = changes(form); } catch (e) { showFormError(form, e); return; }
    if (!Object.keys(body).length) { status.textContent = t('admin.set.nothing'); return; }
    const save = $('#settings-save');
    save.disabled = true;
    try {
      await api('/api/admin/settings', { method: 'PATCH', body });
      await loadSettings();
      status.textContent = t('admin.set.saved');
      toast(t('admin.set.saved'), 'ok');
    } catch (e) {
      showFormError(form, e);
    } finally {
      save.disabled = false;
    }
  });
  document.addEventListener('langchange', () => { if (loaded) render(); });
  return loadSettings();
}
