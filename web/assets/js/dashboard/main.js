// The dashboard (/): loads the channel list in its compact form, renders the cards,
// keeps filters in the address, reorders by drag (mouse, touch or the keyboard on the
// handle), and follows /api/events so runs started anywhere show up live.
import Sortable from '/vendor/sortablejs/sortable.esm.js';
import { $, clear } from '../dom.js';
import { addCatalogue, t } from '../i18n.js';
import { api } from '../api.js';
import { connectEvents } from '../events.js';
import { initPage, toast, confirmDialog, showConnectionState } from '../page.js';
import { openChannelForm } from '../channel-form.js';
import { fmtNumber } from '../time.js';
import { renderCard } from './card.js';
import dashboardStrings from '../i18n/dashboard.js';

addCatalogue(dashboardStrings);

const HISTORY = 30;
const state = {
  targets: [],
  role: null,
  loaded: false,
  expanded: new Set(JSON.parse(sessionStorage.getItem('apimon.expanded') || '[]')),
  filters: { protocol: '', status: '', q: '' },
};

// ---- filters, kept in the address ----------------------------------------------------

function readFilters() {
  const p = new URLSearchParams(window.location.search);
  state.filters = { protocol: p.get('protocol') || '', status: p.get('status') || '', q: p.get('q') || '' };
  $('#filter-protocol').value = state.filters.protocol;
  $('#filter-status').value = state.filters.status;
  $('#filter-search').value = state.filters.q;
}

function writeFilters() {
  const url = new URL(window.location.href);
  for (const [k, v] of Object.entries(state.filters)) {
    if (v) url.searchParams.set(k, v); else url.searchParams.delete(k);
  }
  window.history.replaceState(null, '', url.pathname + url.search);
}

function filtering() {
  const f = state.filters;
  return Boolean(f.protocol || f.status || f.q);
}

/** The models of a target the filters let through, or null when the card is hidden. */
function visibleModels(target) {
  const f = state.filters;
  const q = f.q.trim().toLowerCase();
  const nameHit = !q || target.name.toLowerCase().includes(q) || (target.base_url || '').toLowerCase().includes(q);
  const models = (target.latest_models || []).filter((m) => {
    const status = m.status || (m.success ? 'ok' : 'fail');
    if (f.protocol && m.protocol !== f.protocol) return false;
    if (f.status && status !== f.status) return false;
    if (q && !nameHit && !m.model.toLowerCase().includes(q)) return false;
    return true;
  });
  if (!filtering()) return models;
  if (models.length) return models;
  return nameHit && !f.protocol && !f.status ? models : null;
}

// ---- rendering -----------------------------------------------------------------------

function renderStats() {
  const models = state.targets.flatMap((x) => x.latest_models || []);
  const ok = models.filter((m) => m.success).length;
  $('#stat-channels').textContent = fmtNumber(state.targets.length);
  $('#stat-models').textContent = fmtNumber(models.length);
  $('#stat-healthy').textContent = fmtNumber(ok);
  $('#stat-rate').textContent = models.length ? `${fmtNumber((ok / models.length) * 100, 0)}%` : '–';
  $('#stat-running').textContent = fmtNumber(state.targets.filter((x) => x.running).length);
}

function cardView(target, models) {
  return {
    role: state.role,
    expanded: state.expanded.has(target.id) || (filtering() && models.length > 0),
    models,
    hiddenModels: (target.latest_models || []).length - models.length,
    sortable: !filtering(),
    actions,
  };
}

function cardFor(target) {
  const models = visibleModels(target);
  return models === null ? null : renderCard(target, cardView(target, models));
}

function render() {
  const list = $('#channels');
  const focusKey = document.activeElement?.dataset?.key;
  const focusId = document.activeElement?.closest('.channel')?.dataset.id;
  clear(list);
  let shown = 0;
  for (const target of state.targets) {
    const card = cardFor(target);
    if (card) { list.append(card); shown += 1; }
  }
  $('#first-run').hidden = !(state.loaded && state.targets.length === 0);
  $('#first-add').hidden = state.role !== 'admin';
  $('#first-visitor').hidden = state.role === 'admin';
  $('#no-match').hidden = !(state.targets.length > 0 && shown === 0);
  $('#add-channel').hidden = state.role !== 'admin';
  if (sortable) sortable.option('disabled', filtering() || state.role !== 'admin');
  renderStats();
  if (focusKey && focusId) list.querySelector(`.channel[data-id="${focusId}"] [data-key="${focusKey}"]`)?.focus();
}

/** Re-renders one card in place (live updates), keeping focus. */
function renderOne(target) {
  const old = $(`#channels .channel[data-id="${target.id}"]`);
  if (!old) { render(); return; }
  const focusKey = old.contains(document.activeElement) ? document.activeElement.dataset.key : null;
  const card = cardFor(target);
  if (card) old.replaceWith(card); else old.remove();
  if (focusKey && card) card.querySelector(`[data-key="${focusKey}"]`)?.focus();
  renderStats();
}

// ---- data ----------------------------------------------------------------------------

async function load() {
  try {
    const [list, dash] = await Promise.all([
      api('/api/targets', { query: { history_format: 'compact', history: HISTORY } }),
      api('/api/dashboard').catch(() => null),
    ]);
    state.targets = list.items || [];
    state.role = list.permissions?.role || 'visitor';
    state.loaded = true;
    render();
    showLag(dash);
  } catch (e) {
    toast(e.status === 0 ? t('error.network') : t('error.generic', { detail: e.detail || e.message }), 'error');
  }
}

function showLag(dash) {
  const line = $('#lag-notice');
  if (dash && dash.scheduler_lag_s > 60) {
    line.textContent = t('dash.lag', { s: Math.round(dash.scheduler_lag_s), n: dash.queued_runs });
    line.hidden = false;
  } else line.hidden = true;
}

let reloadTimer = null;
function reloadSoon(ms = 300) {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(load, ms);
}

const byId = (id) => state.targets.find((x) => x.id === id);

function onEvent(ev) {
  const target = byId(ev.target_id);
  switch (ev.type) {
    case 'run_started':
      if (!target) { reloadSoon(); return; }
      target.running = true;
      // A new position in every model's strip, filled as results arrive.
      target.history_runs = [...(target.history_runs || []), [ev.run_id, Math.floor(ev.ts)]].slice(-HISTORY);
      for (const m of target.latest_models || []) {
        const hist = m.history || { s: '', l: '' };
        const trim = (s) => s.slice(-HISTORY);
        const cut = hist.s.length + 1 > HISTORY ? 1 : 0;
        const e = {};
        for (const [k, v] of Object.entries(hist.e || {})) if (Number(k) - cut >= 0) e[Number(k) - cut] = v;
        m.history = { s: trim(`${hist.s}-`), l: trim(`${hist.l}.`), e };
      }
      renderOne(target);
      break;
    case 'model_result': {
      if (!target) return;
      let m = (target.latest_models || []).find((x) => x.model === ev.model);
      if (!m) {
        m = { model: ev.model, history: { s: '-'.repeat((target.history_runs || []).length), l: '.'.repeat((target.history_runs || []).length), e: {} } };
        target.latest_models = [...(target.latest_models || []), m];
      }
      Object.assign(m, {
        protocol: ev.protocol, success: ev.success, status: ev.status, error: ev.error, error_class: ev.error_class,
        status_code: ev.status_code, ttft_ms: ev.ttft_ms, tokens_per_s: ev.tokens_per_s, total_ms: ev.total_ms,
        duration: ev.total_ms / 1000, model_mismatch: ev.model_mismatch,
      });
      const pos = (target.history_runs || []).findIndex((r) => r[0] === ev.run_id);
      if (pos >= 0 && m.history) {
        const code = { ok: '1', slow: '2', fail: '0' }[ev.status] || '-';
        const s = m.history.s.padEnd(pos + 1, '-');
        m.history = { ...m.history, s: s.slice(0, pos) + code + s.slice(pos + 1) };
        if (ev.error_class) m.history.e = { ...(m.history.e || {}), [pos]: ev.error_class };
      }
      renderOne(target);
      break;
    }
    case 'run_completed':
      if (target) { target.running = false; target.last_status = ev.status; target.last_run_at = ev.ts; renderOne(target); }
      reloadSoon();
      break;
    case 'target_deleted':
      state.targets = state.targets.filter((x) => x.id !== ev.target_id);
      render();
      break;
    default:
      // target_updated, models_changed, resync after a lost stream or `lagged`
      reloadSoon();
  }
}

// ---- actions -------------------------------------------------------------------------

const actions = {
  expand(target) {
    if (state.expanded.has(target.id)) state.expanded.delete(target.id); else state.expanded.add(target.id);
    sessionStorage.setItem('apimon.expanded', JSON.stringify([...state.expanded]));
    renderOne(target);
  },
  async run(target) {
    try {
      await api(`/api/targets/${target.id}/run`, { method: 'POST' });
      target.running = true;
      renderOne(target);
      toast(t('dash.run_started', { name: target.name }), 'ok');
    } catch (e) { toast(e.detail || e.message, 'error'); }
  },
  async toggle(target) {
    try {
      const r = await api(`/api/targets/${target.id}`, { method: 'PATCH', body: { enabled: !target.enabled } });
      Object.assign(target, { enabled: r.item.enabled });
      renderOne(target);
      toast(t(target.enabled ? 'dash.enabled' : 'dash.disabled', { name: target.name }), 'ok');
    } catch (e) { toast(e.detail || e.message, 'error'); }
  },
  async edit(target) {
    if (await openChannelForm(target)) load();
  },
  async remove(target) {
    if (!(await confirmDialog(t('dash.delete_confirm', { name: target.name }), { confirm: t('action.delete'), danger: true }))) return;
    try {
      await api(`/api/targets/${target.id}`, { method: 'DELETE' });
      state.targets = state.targets.filter((x) => x.id !== target.id);
      render();
      toast(t('dash.deleted', { name: target.name }), 'ok');
    } catch (e) { toast(e.detail || e.message, 'error'); }
  },
  /** Keyboard reorder: moves a card one place up or down and saves. */
  move(target, delta) {
    const i = state.targets.indexOf(target);
    const j = i + delta;
    if (j < 0 || j >= state.targets.length) return;
    state.targets.splice(i, 1);
    state.targets.splice(j, 0, target);
    render();
    $(`#channels .channel[data-id="${target.id}"] .drag-handle`)?.focus();
    saveOrder();
  },
};

async function saveOrder() {
  try {
    await api('/api/targets/reorder', { method: 'POST', body: { ids: state.targets.map((x) => x.id) } });
    toast(t('dash.reordered'), 'ok', 1500);
  } catch (e) {
    toast(t('dash.reorder_failed', { detail: e.detail || e.message }), 'error');
    load();
  }
}

let sortable = null;

function initSortable() {
  sortable = Sortable.create($('#channels'), {
    handle: '.drag-handle',
    draggable: '.channel',
    animation: 150,
    ghostClass: 'dragging',
    forceFallback: true, // the same path for mouse and touch, and testable
    fallbackOnBody: true,
    disabled: true,
    onEnd() {
      const ids = [...$('#channels').children].map((el) => Number(el.dataset.id));
      const order = new Map(ids.map((id, i) => [id, i]));
      state.targets.sort((a, b) => (order.get(a.id) ?? 1e9) - (order.get(b.id) ?? 1e9));
      saveOrder();
    },
  });
}

// ---- start ---------------------------------------------------------------------------

function start() {
  initPage();
  readFilters();
  initSortable();
  const onFilter = () => {
    state.filters = { protocol: $('#filter-protocol').value, status: $('#filter-status').value, q: $('#filter-search').value };
    writeFilters();
    render();
  };
  $('#filter-protocol').addEventListener('change', onFilter);
  $('#filter-status').addEventListener('change', onFilter);
  $('#filter-search').addEventListener('input', onFilter);
  $('#refresh').addEventListener('click', load);
  $('#to-top').addEventListener('click', () => window.scrollTo({ top: 0, behavior: 'smooth' }));
  const add = async () => { if (await openChannelForm()) load(); };
  $('#add-channel').addEventListener('click', add);
  $('#first-add').addEventListener('click', add);
  document.addEventListener('langchange', render);
  load().then(() => connectEvents({ onEvent, onState: showConnectionState }));
}

start();
// Relative times and "last run" labels age: redraw once a minute.
setInterval(() => { if (state.loaded) render(); }, 60000);
