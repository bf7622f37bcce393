// The channel form (add on the dashboard; edit on the dashboard and the admin panel).
// It checks the API's bounds before sending (README "Target fields and bounds") and
// shows the API's own refusal next to the field it names. On edit only changed fields
// are sent, so a masked key or proxy stays as stored.
import { h } from './dom.js';
import { addCatalogue, t } from './i18n.js';
import formStrings from './i18n/dashboard.js';
import { api, ApiError } from './api.js';
import { showFormError, clearFormErrors, toast } from './page.js';

addCatalogue(formStrings);

// name → [kind, bounds]; kinds: text, url, int, float, bool, select, lines, nullable text
const FIELDS = {
  name: { kind: 'text', min: 1, max: 128, required: true },
  base_url: { kind: 'url', min: 3, max: 512, required: true },
  api_key: { kind: 'secret', min: 1, max: 2048, required: true },
  interval_min: { kind: 'int', min: 1, max: 1440 },
  timeout_s: { kind: 'float', min: 3, max: 300 },
  max_models: { kind: 'int', min: 0, max: 5000 },
  slow_ms: { kind: 'int', min: 100, max: 600000 },
  enabled: { kind: 'bool' },
  verify_ssl: { kind: 'bool' },
  visitor_channel_actions_enabled: { kind: 'bool' },
  probe_mode: { kind: 'select', options: ['stream', 'plain', 'both'], label: 'mode' },
  check_mode: { kind: 'select', options: ['challenge', 'prompt'], label: 'check' },
  client_profile: { kind: 'select', options: ['browser', 'plain'], label: 'profile' },
  exclude_models: { kind: 'lines', max: 256 },
  prompt: { kind: 'text', min: 1, max: 4000, multiline: true },
  anthropic_version: { kind: 'text', min: 4, max: 64 },
  max_tokens: { kind: 'int', min: 16, max: 65536, nullable: true },
  user_agent: { kind: 'text', min: 1, max: 512, nullable: true },
  proxy_url: { kind: 'text', min: 1, max: 2048, nullable: true },
  source_url: { kind: 'text', min: 1, max: 1024, nullable: true },
};
const BASIC = ['name', 'base_url', 'api_key', 'interval_min', 'timeout_s', 'max_models', 'enabled', 'verify_ssl', 'visitor_channel_actions_enabled'];
const ADVANCED = ['probe_mode', 'check_mode', 'slow_ms', 'client_profile', 'max_tokens', 'anthropic_version', 'exclude_models', 'prompt', 'user_agent', 'proxy_url', 'source_url'];
const LABEL_KEY = { visitor_channel_actions_enabled: 'form.visitor_actions' };

function labelOf(name) {
  return t(LABEL_KEY[name] || `form.${name}`);
}

function control(name, value) {
  const f = FIELDS[name];
  const id = `cf-${name}`;
  if (f.kind === 'bool') {
    return h('div', { class: 'field' },
      h('label', { class: 'switch' },
        h('input', { type: 'checkbox', id, name, checked: !!value }),
        h('span', { class: 'track', 'aria-hidden': 'true' }),
        h('span', { text: labelOf(name) })));
  }
  let input;
  if (f.kind === 'select') {
    input = h('select', { id, name, class: 'select' },
      f.options.map((o) => h('option', { value: o, selected: o === value }, t(`${f.label}.${o}`))));
  } else if (f.kind === 'lines' || f.multiline) {
    input = h('textarea', { id, name, class: 'input', rows: 3 });
    input.value = f.kind === 'lines' ? (value || []).join('\n') : (value ?? '');
  } else {
    const type = f.kind === 'int' || f.kind === 'float' ? 'number' : f.kind === 'secret' ? 'password' : 'text';
    input = h('input', {
      id, name, type, class: 'input', autocomplete: 'off', spellcheck: 'false',
      inputmode: f.kind === 'url' ? 'url' : null,
      step: f.kind === 'float' ? '0.1' : f.kind === 'int' ? '1' : null,
    });
    input.value = value ?? '';
  }
  return h('div', { class: `field${f.multiline || f.kind === 'lines' ? ' span-2' : ''}` },
    h('label', { class: 'label', for: id, text: labelOf(name) }), input,
    name === 'base_url' ? h('p', { class: 'hint', text: t('form.base_url_hint') }) : null);
}

/** Reads and checks the form: → { body } or throws an ApiError-like { field, detail }. */
function read(form, original) {
  const body = {};
  for (const name of [...BASIC, ...ADVANCED]) {
    const el = form.elements[name];
    if (!el) continue;
    const f = FIELDS[name];
    let v;
    if (f.kind === 'bool') v = el.checked;
    else if (f.kind === 'lines') v = el.value.split('\n').map((s) => s.trim()).filter(Boolean);
    else v = el.value.trim();
    const bad = (what) => { throw new ApiError(400, `${name}: ${what}`); };
    if (f.kind === 'int' || f.kind === 'float') {
      if (v === '') {
        if (f.nullable) v = null; else if (original) continue; else if (f.required) bad(t('form.err.required')); else continue;
      } else {
        const n = Number(v);
        if (!Number.isFinite(n) || (f.kind === 'int' && !Number.isInteger(n)) || n < f.min || n > f.max) {
          bad(t('form.err.range', { min: f.min, max: f.max }));
        }
        v = n;
      }
    } else if (['text', 'url', 'secret'].includes(f.kind)) {
      if (v === '') {
        if (f.required) bad(t('form.err.required'));
        if (f.nullable) v = null; else continue;
      } else {
        const len = [...v].length;
        if (len < f.min || len > f.max) bad(t('form.err.length', { min: f.min, max: f.max, len }));
        if (f.kind === 'url' && !/^https?:\/\/[^\s/]+/i.test(v)) bad(t('form.err.url'));
      }
    }
    if (original) {
      const before = original[name];
      const same = JSON.stringify(before ?? null) === JSON.stringify(v ?? null)
        || (f.nullable && (before ?? null) === null && v === null);
      if (same) continue;
    }
    body[name] = v;
  }
  return body;
}

/**
 * Opens the form. `target` given: edit it (PATCH /api/targets/{id}); else add a channel
 * (POST /api/targets, then start its first run). Resolves with the saved item, or null.
 */
export function openChannelForm(target = null) {
  return new Promise((resolve) => {
    const editing = !!target;
    const values = target || { enabled: true, verify_ssl: true, interval_min: null, timeout_s: null, max_models: 0, probe_mode: 'stream', check_mode: 'challenge', client_profile: 'browser' };
    const form = h('form', { class: 'dialog-body', novalidate: true },
      h('div', { class: 'dialog-head' },
        h('h2', { id: 'cf-title', text: editing ? t('form.edit_title', { name: target.name }) : t('form.add_title') })),
      h('div', { class: 'form-grid' }, BASIC.map((n) => control(n, values[n]))),
      editing ? h('p', { class: 'hint', text: t('form.api_key_keep') }) : null,
      h('details', { class: 'advanced' },
        h('summary', { text: t('form.advanced') }),
        h('div', { class: 'form-grid' }, ADVANCED.map((n) => control(n, values[n])))),
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn', text: t('action.cancel'), onclick: () => dialog.close() }),
        h('button', { type: 'submit', class: 'btn btn-primary', id: 'cf-submit', text: editing ? t('action.save') : t('form.create') })));
    const dialog = h('dialog', { class: 'dialog dialog-wide', 'aria-labelledby': 'cf-title' }, form);
    let saved = null;
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearFormErrors(form);
      const submit = form.querySelector('#cf-submit');
      try {
        const body = read(form, editing ? target : null);
        submit.disabled = true;
        if (editing) {
          const r = Object.keys(body).length
            ? await api(`/api/targets/${target.id}`, { method: 'PATCH', body })
            : { item: target };
          saved = r.item;
          toast(t('form.saved', { name: saved.name }), 'ok');
        } else {
          const r = await api('/api/targets', { method: 'POST', body });
          saved = r.item;
          await api(`/api/targets/${saved.id}/run`, { method: 'POST' }).catch(() => {});
          toast(t('form.created', { name: saved.name }), 'ok');
        }
        dialog.close();
      } catch (e) {
        // A duplicate name is a 409 that names no field: it is the name's.
        if (e.status === 409 && /named/.test(e.detail || '')) e.field = 'name';
        if (e.field && form.elements[e.field]?.closest('details')) form.querySelector('details').open = true;
        showFormError(form, e);
      } finally {
        submit.disabled = false;
      }
    });
    dialog.addEventListener('close', () => { dialog.remove(); resolve(saved); });
    document.body.append(dialog);
    dialog.showModal();
    form.elements.name.focus();
  });
}
