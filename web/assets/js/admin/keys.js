// The admin panel's proxy keys: create (the secret is shown once, with copy), list
// with status, limits, today's use and last use, edit limits and scope, revoke.
import { $, h, clear, icon } from '../dom.js';
import { t } from '../i18n.js';
import { api, ApiError } from '../api.js';
import { toast, confirmDialog, showFormError, clearFormErrors } from '../page.js';
import { fmtDateTime, fmtAgo, fmtNumber } from '../time.js';
import { copyText } from './clipboard.js';

let keys = [];
let channels = [];

const STATUS_TONE = { active: 'ok', expired: 'warn', disabled: 'warn', revoked: 'bad' };

function channelName(id) {
  return channels.find((c) => c.id === id)?.name ?? `#${id}`;
}

function scope(k) {
  const parts = [];
  parts.push(k.allowed_target_ids.length ? k.allowed_target_ids.map(channelName).join(', ') : t('keys.all_channels'));
  parts.push(k.allowed_models.length ? t('keys.n_models', { n: k.allowed_models.length }) : t('keys.all_models'));
  return parts.join(' · ');
}

function limits(k) {
  const parts = [];
  if (k.rpm_limit) parts.push(t('keys.rpm', { n: fmtNumber(k.rpm_limit) }));
  if (k.daily_token_budget) parts.push(t('keys.budget', { n: fmtNumber(k.daily_token_budget) }));
  if (k.expires_at) parts.push(t('keys.expires', { time: fmtDateTime(k.expires_at) }));
  return parts.length ? parts.join(' · ') : t('keys.no_limits');
}

function row(k) {
  const revoked = Boolean(k.revoked_at);
  return h('tr', { dataset: { id: k.id } },
    h('td', null, h('div', { class: 'strong', text: k.name }), k.description ? h('div', { class: 'small muted', text: k.description }) : null),
    h('td', { class: 'mono nowrap', text: `${k.key_prefix}…` }),
    h('td', null, h('span', { class: `badge badge-${STATUS_TONE[k.status] || 'accent'}`, text: t(`keys.status.${k.status}`) })),
    h('td', { class: 'small' }, h('div', { text: scope(k) }), h('div', { class: 'muted', text: limits(k) })),
    h('td', { class: 'small nowrap' },
      h('div', { text: t('keys.today', { r: fmtNumber(k.usage_today?.requests ?? 0), tk: fmtNumber(k.usage_today?.tokens ?? 0) }) }),
      h('div', { class: 'muted', title: k.last_used_at ? fmtDateTime(k.last_used_at) : '' },
        k.last_used_at ? t('keys.last_used', { ago: fmtAgo(k.last_used_at), channel: k.last_used_target_id ? channelName(k.last_used_target_id) : '—' }) : t('keys.never_used'))),
    h('td', { class: 'num nowrap' },
      revoked ? null : h('button', { type: 'button', class: 'btn btn-sm', dataset: { key: 'edit' }, onclick: () => openKeyForm(k) }, icon('edit', 'icon-sm'), t('action.edit')),
      revoked ? null : h('button', { type: 'button', class: 'btn btn-sm btn-danger-ghost', dataset: { key: 'revoke' }, onclick: () => revoke(k) }, icon('x', 'icon-sm'), t('keys.revoke'))));
}

export async function loadKeys() {
  const [r, ch] = await Promise.all([api('/api/proxy/keys'), api('/api/admin/channels').catch(() => ({ items: [] }))]);
  keys = r.items || [];
  channels = ch.items || [];
  const body = clear($('#keys-table tbody'));
  for (const k of keys) body.append(row(k));
  $('#keys-empty').hidden = keys.length > 0;
}

async function revoke(k) {
  if (!(await confirmDialog(t('keys.revoke_confirm', { name: k.name }), { confirm: t('keys.revoke'), danger: true }))) return;
  try {
    await api(`/api/proxy/keys/${k.id}`, { method: 'DELETE' });
    toast(t('keys.revoked', { name: k.name }), 'ok');
    loadKeys();
  } catch (e) { toast(e.detail || e.message, 'error'); }
}

function toLocalInput(ts) {
  if (!ts) return '';
  const d = new Date(ts * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function numberOrNull(form, name) {
  const v = form.elements[name].value.trim();
  if (v === '') return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ApiError(400, `${name}: ${t('keys.err.positive')}`);
  return n;
}

function readKeyForm(form) {
  const expires = form.elements.expires_at.value;
  const body = {
    name: form.elements.name.value.trim(),
    description: form.elements.description.value.trim(),
    allowed_target_ids: [...form.querySelectorAll('input[name="allowed_target_ids"]:checked')].map((b) => Number(b.value)),
    allowed_models: form.elements.allowed_models.value.split('\n').map((s) => s.trim()).filter(Boolean),
    expires_at: expires ? new Date(expires).getTime() / 1000 : null,
    rpm_limit: numberOrNull(form, 'rpm_limit'),
    daily_token_budget: numberOrNull(form, 'daily_token_budget'),
  };
  if (!body.name) throw new ApiError(400, `name: ${t('form.err.required')}`);
  if (form.elements.enabled) body.enabled = form.elements.enabled.checked;
  return body;
}

function field(name, label, control, hint) {
  return h('div', { class: 'field' }, h('label', { class: 'label', for: `kf-${name}`, text: label }), control, hint ? h('p', { class: 'hint', text: hint }) : null);
}

/** Create (no key given) or edit a key. */
function openKeyForm(k = null) {
  const input = (name, attrs = {}) => h('input', { id: `kf-${name}`, name, class: 'input', autocomplete: 'off', ...attrs });
  const models = h('textarea', { id: 'kf-allowed_models', name: 'allowed_models', class: 'input', rows: 3, placeholder: 'alpha/gpt-4o-mini' });
  models.value = (k?.allowed_models || []).join('\n');
  const form = h('form', { class: 'dialog-body', novalidate: true },
    h('h2', { id: 'kf-title', text: k ? t('keys.edit_title', { name: k.name }) : t('keys.create_title') }),
    h('div', { class: 'form-grid' },
      field('name', t('keys.f.name'), input('name', { maxlength: 128 })),
      field('description', t('keys.f.description'), input('description', { maxlength: 512 })),
      field('rpm_limit', t('keys.f.rpm_limit'), input('rpm_limit', { type: 'number', min: 1, step: 1 }), t('keys.f.empty_none')),
      field('daily_token_budget', t('keys.f.daily_token_budget'), input('daily_token_budget', { type: 'number', min: 1, step: 1 }), t('keys.f.empty_none')),
      field('expires_at', t('keys.f.expires_at'), input('expires_at', { type: 'datetime-local' }), t('keys.f.empty_never')),
      k ? h('div', { class: 'field' }, h('label', { class: 'switch' }, h('input', { type: 'checkbox', name: 'enabled', id: 'kf-enabled', checked: k.enabled }), h('span', { class: 'track', 'aria-hidden': 'true' }), h('span', { text: t('form.enabled') }))) : null),
    h('fieldset', { class: 'field fieldset' },
      h('legend', { class: 'label', text: t('keys.f.allowed_target_ids') }),
      h('div', { class: 'checklist compact', id: 'kf-allowed_target_ids' },
        channels.map((c) => h('label', { class: 'check-item' },
          h('input', { type: 'checkbox', name: 'allowed_target_ids', value: c.id, checked: (k?.allowed_target_ids || []).includes(c.id) }),
          h('span', { text: c.name })))),
      h('p', { class: 'hint', text: t('keys.f.none_all') })),
    field('allowed_models', t('keys.f.allowed_models'), models, t('keys.f.models_hint')),
    h('div', { class: 'dialog-actions' },
      h('button', { type: 'button', class: 'btn', text: t('action.cancel'), onclick: () => dialog.close() }),
      h('button', { type: 'submit', class: 'btn btn-primary', id: 'kf-submit', text: k ? t('action.save') : t('keys.create') })));
  for (const [name, v] of [['name', k?.name], ['description', k?.description], ['rpm_limit', k?.rpm_limit], ['daily_token_budget', k?.daily_token_budget]]) {
    form.elements[name].value = v ?? '';
  }
  form.elements.expires_at.value = toLocalInput(k?.expires_at);
  const dialog = h('dialog', { class: 'dialog dialog-wide', 'aria-labelledby': 'kf-title' }, form);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFormErrors(form);
    try {
      const body = readKeyForm(form);
      if (k) {
        await api(`/api/proxy/keys/${k.id}`, { method: 'PATCH', body });
        toast(t('keys.saved', { name: body.name }), 'ok');
        dialog.close();
      } else {
        const r = await api('/api/proxy/keys', { method: 'POST', body });
        dialog.close();
        showSecretOnce(r.item, r.proxy_key);
      }
      loadKeys();
    } catch (e) {
      showFormError(form, e);
    }
  });
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  form.elements.name.focus();
}

/** The new key's secret: shown here once; the API never shows it again. */
function showSecretOnce(item, secret) {
  const value = h('input', { id: 'new-key', class: 'input mono', readonly: true, 'aria-label': t('keys.secret_label') });
  value.value = secret;
  const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': 'secret-title' },
    h('form', { method: 'dialog', class: 'dialog-body' },
      h('h2', { id: 'secret-title', text: t('keys.created', { name: item.name }) }),
      h('p', { class: 'notice-line', text: t('keys.once') }),
      h('div', { class: 'row' }, value,
        h('button', { type: 'button', class: 'btn', id: 'copy-new-key', onclick: async () => { await copyText(secret); toast(t('action.copied'), 'ok', 1500); } }, icon('copy', 'icon-sm'), t('action.copy'))),
      h('p', { class: 'hint', text: t('keys.use_hint') }),
      h('div', { class: 'dialog-actions' }, h('button', { type: 'submit', class: 'btn btn-primary', id: 'secret-done', text: t('keys.done') }))));
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  value.select();
}

export function initKeys() {
  const section = $('#proxy-keys');
  section.append(
    h('div', { class: 'panel-head' },
      h('div', null, h('div', { class: 'eyebrow', text: t('keys.eyebrow') }), h('h2', { id: 'keys-title', 'data-i18n': 'admin.keys.title', text: t('admin.keys.title') })),
      h('button', { type: 'button', class: 'btn btn-primary btn-sm', id: 'key-create', onclick: () => openKeyForm() }, icon('plus', 'icon-sm'), t('keys.create'))),
    h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': t('admin.keys.title') },
      h('table', { class: 'table', id: 'keys-table' },
        h('thead', null, h('tr', null,
          ['name', 'prefix', 'status', 'scope', 'use'].map((c) => h('th', { scope: 'col', text: t(`keys.col.${c}`) })),
          h('th', { scope: 'col', class: 'num', text: t('admin.ch.actions') }))),
        h('tbody'))),
    h('p', { id: 'keys-empty', class: 'muted', hidden: true, text: t('keys.empty') }));
  section.hidden = false;
  $('#nav-keys').hidden = false;
  return loadKeys();
}
