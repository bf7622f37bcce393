// The admin panel's channel table: interval, max models, model selection (a checklist of
// the discovered models with search and select all), the visitor-actions switch and
// the full channel form.
import { $, h, clear, icon } from '../dom.js';
import { t } from '../i18n.js';
import { api } from '../api.js';
import { toast } from '../page.js';
import { openChannelForm } from '../channel-form.js';

let channels = [];

function selectionSummary(c) {
  const n = (c.selected_models || []).length;
  return n ? t('admin.ch.selected_n', { n }) : t('admin.ch.all_models');
}

async function setVisitorActions(c, on, input) {
  input.disabled = true;
  try {
    const r = await api(`/api/admin/channels/${c.id}/advanced`, { method: 'PATCH', body: { visitor_channel_actions_enabled: on } });
    Object.assign(c, r.item);
    toast(t(on ? 'admin.ch.visitor_on' : 'admin.ch.visitor_off', { name: c.name }), 'ok', 2000);
  } catch (e) {
    input.checked = !on;
    toast(e.detail || e.message, 'error');
  } finally {
    input.disabled = false;
  }
}

function row(c) {
  const visitor = h('input', { type: 'checkbox', checked: !!c.visitor_channel_actions_enabled, 'aria-label': `${t('admin.ch.visitor')}: ${c.name}` });
  visitor.addEventListener('change', () => setVisitorActions(c, visitor.checked, visitor));
  return h('tr', { dataset: { id: c.id } },
    h('td', null, h('div', { class: 'strong', text: c.name }), h('div', { class: 'small muted', text: c.enabled ? t('form.enabled') : t('status.disabled') })),
    h('td', { class: 'nowrap', text: t('admin.ch.minutes', { n: c.interval_min }) }),
    h('td', { class: 'nowrap', text: c.max_models ? String(c.max_models) : t('admin.ch.no_cap') }),
    h('td', null,
      h('button', { type: 'button', class: 'btn btn-sm', dataset: { key: 'models' }, onclick: () => openModelSelection(c) }, icon('list', 'icon-sm'), t('admin.ch.models_btn')),
      h('div', { class: 'small muted sel-summary', text: selectionSummary(c) })),
    h('td', null, h('label', { class: 'switch' }, visitor, h('span', { class: 'track', 'aria-hidden': 'true' }))),
    h('td', { class: 'num' },
      h('button', { type: 'button', class: 'btn btn-sm btn-primary', dataset: { key: 'edit' }, onclick: async () => { if (await openChannelForm(c)) loadChannels(); } },
        icon('sliders', 'icon-sm'), t('action.edit'))));
}

export async function loadChannels() {
  const r = await api('/api/admin/channels');
  channels = r.items || [];
  const body = clear($('#channels-table tbody'));
  for (const c of channels) body.append(row(c));
  $('#ch-empty').hidden = channels.length > 0;
  return channels;
}

/** The model checklist of one channel; saving sends the checked names, or [] for
 * "every model, including ones discovered later". */
async function openModelSelection(c) {
  let view;
  try { view = (await api(`/api/admin/channels/${c.id}/models`)).item; } catch (e) { toast(e.detail || e.message, 'error'); return; }
  const discovered = view.discovered || (view.available_models || []).map((m) => m.model);
  const byName = new Map((view.available_models || []).map((m) => [m.model, m]));
  const chosen = new Set(view.selected_models || []);
  const allMode = chosen.size === 0;
  const search = h('input', { type: 'search', class: 'input', id: 'ms-search', placeholder: t('admin.ms.search'), 'aria-label': t('admin.ms.search') });
  const everyModel = h('input', { type: 'checkbox', id: 'ms-all-mode', checked: allMode });
  const list = h('div', { class: 'checklist', role: 'group', 'aria-label': t('admin.ms.list') });
  const count = h('span', { class: 'small muted', role: 'status' });
  const boxes = discovered.map((name) => {
    const m = byName.get(name);
    const box = h('input', { type: 'checkbox', value: name, checked: allMode || chosen.has(name) });
    const item = h('label', { class: 'check-item', dataset: { model: name } }, box,
      h('span', { class: 'mono', text: name }),
      m?.protocol ? h('span', { class: `badge badge-${m.protocol}`, text: t(`proto.${m.protocol}`) }) : null,
      m && m.success === false ? h('span', { class: 'badge badge-bad', text: t('status.fail') }) : null);
    list.append(item);
    return box;
  });
  const update = () => {
    const q = search.value.trim().toLowerCase();
    for (const box of boxes) {
      box.closest('.check-item').hidden = q !== '' && !box.value.toLowerCase().includes(q);
      box.disabled = everyModel.checked;
    }
    const n = boxes.filter((b) => b.checked).length;
    count.textContent = everyModel.checked ? t('admin.ch.all_models') : t('admin.ms.count', { n, total: boxes.length });
  };
  const setVisible = (on) => {
    for (const box of boxes) if (!box.closest('.check-item').hidden) box.checked = on;
    update();
  };
  search.addEventListener('input', update);
  everyModel.addEventListener('change', () => { if (everyModel.checked) for (const b of boxes) b.checked = true; update(); });
  list.addEventListener('change', update);
  const form = h('form', { class: 'dialog-body', method: 'dialog' },
    h('div', { class: 'dialog-head' }, h('h2', { id: 'ms-title', text: t('admin.ms.title', { name: c.name }) })),
    discovered.length === 0 ? h('p', { class: 'muted', text: t('admin.ms.none') }) : null,
    h('label', { class: 'switch' }, everyModel, h('span', { class: 'track', 'aria-hidden': 'true' }), h('span', { text: t('admin.ms.every') })),
    search,
    h('div', { class: 'row-wrap' },
      h('button', { type: 'button', class: 'btn btn-sm', id: 'ms-select-all', text: t('admin.ms.select_all'), onclick: () => setVisible(true) }),
      h('button', { type: 'button', class: 'btn btn-sm', id: 'ms-select-none', text: t('admin.ms.select_none'), onclick: () => setVisible(false) }),
      count),
    list,
    h('div', { class: 'dialog-actions' },
      h('button', { type: 'button', class: 'btn', text: t('action.cancel'), onclick: () => dialog.close() }),
      h('button', { type: 'submit', class: 'btn btn-primary', id: 'ms-save', text: t('action.save') })));
  const dialog = h('dialog', { class: 'dialog dialog-wide', 'aria-labelledby': 'ms-title' }, form);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const selected = everyModel.checked ? [] : boxes.filter((b) => b.checked).map((b) => b.value);
    if (!everyModel.checked && selected.length === 0) { toast(t('admin.ms.pick_one'), 'error'); return; }
    try {
      await api(`/api/admin/channels/${c.id}/models`, { method: 'PATCH', body: { selected_models: selected } });
      toast(t('admin.ms.saved', { name: c.name }), 'ok');
      dialog.close();
      loadChannels();
    } catch (e) { toast(e.detail || e.message, 'error'); }
  });
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  update();
  dialog.showModal();
  search.focus();
}

export function initChannels() {
  $('#ch-refresh').addEventListener('click', loadChannels);
  document.addEventListener('langchange', () => loadChannels());
  return loadChannels();
}
