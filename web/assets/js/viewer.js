// The log viewer (viewer.html?target_id=): a run picker, the run's probe rows filtered by
// status, error class, protocol, route and text (on the server, a page at a time), and a
// detail pane with everything a row recorded. The choices live in the address, so a
// link (or a reload) shows the same view; a run finishing on this channel refreshes the
// "latest run" view live.
import { h, $, clear, icon } from './dom.js';
import { t, addCatalogue } from './i18n.js';
import { api, ApiError } from './api.js';
import { initPage, toast, showConnectionState } from './page.js';
import { connectEvents } from './events.js';
import { fmtTime, fmtDateTime, fmtMs, fmtNumber } from './time.js';
import viewerStrings from './i18n/viewer.js';
import { classLabel, statusOf, copyButton, widthClass } from './probe-view.js';

addCatalogue(viewerStrings);

const PAGE = 100;
const FILTERS = ['status', 'error_class', 'protocol', 'route', 'q'];

const params = new URL(window.location.href).searchParams;
const state = {
  targetId: Number.parseInt(params.get('target_id') || '', 10),
  // '' = the latest run, 'all' = every run, else a run id.
  run: params.get('run_id') || (params.get('scope') === 'all' ? 'all' : ''),
  filter: Object.fromEntries(FILTERS.map((k) => [k, params.get(k) || ''])),
  offset: Math.max(0, Number.parseInt(params.get('offset') || '0', 10) || 0),
  selected: Number.parseInt(params.get('row') || '', 10) || null,
  tab: 'overview',
  target: null,
  runs: [],
  page: null,
};
let loadSeq = 0;

function syncAddress() {
  const url = new URL(window.location.href);
  const q = url.searchParams;
  for (const k of ['run_id', 'scope', 'offset', 'row', ...FILTERS]) q.delete(k);
  if (state.run === 'all') q.set('scope', 'all');
  else if (state.run) q.set('run_id', state.run);
  for (const k of FILTERS) if (state.filter[k]) q.set(k, state.filter[k]);
  if (state.offset) q.set('offset', state.offset);
  if (state.selected) q.set('row', state.selected);
  window.history.replaceState(null, '', `${url.pathname}?${q}`);
}

// ---- loading -------------------------------------------------------------------------

async function loadRuns() {
  const data = await api(`/api/targets/${state.targetId}/runs`, { query: { limit: 200 } });
  state.runs = data.items || [];
  state.target = data.target;
  renderHeader();
  renderRunPicker();
}

async function loadRows({ keepSelection = true } = {}) {
  const seq = ++loadSeq;
  const query = { limit: PAGE, offset: state.offset, ...state.filter };
  if (state.run === 'all') query.scope = 'all';
  else if (state.run) query.run_id = state.run;
  $('#rows').setAttribute('aria-busy', 'true');
  let data;
  try {
    data = await api(`/api/targets/${state.targetId}/logs`, { query });
  } finally {
    if (seq === loadSeq) $('#rows').removeAttribute('aria-busy');
  }
  if (seq !== loadSeq) return;
  state.page = data;
  if (!keepSelection || !data.items.some((r) => r.id === state.selected)) {
    state.selected = state.selected && data.items.some((r) => r.id === state.selected)
      ? state.selected : (window.matchMedia('(max-width: 760px)').matches ? null : data.items[0]?.id ?? null);
  }
  syncAddress();
  renderFilters();
  renderSummary();
  renderRows();
  renderDetail();
}

// ---- header, run picker, filters -----------------------------------------------------

function renderHeader() {
  const target = state.target;
  if (!target) return;
  $('#target-name').textContent = target.name;
  document.title = `${target.name} · ${t('viewer.title')} · apimon`;
  const base = $('#target-url');
  base.textContent = target.base_url || '';
  base.hidden = !target.base_url;
  $('#to-analysis').href = `/analysis.html?target_id=${state.targetId}`;
}

function runLabel(run) {
  if (run.status === 'running') return `#${run.id} · ${fmtTime(run.started_at)} · ${t('viewer.run_running')}`;
  return t('viewer.run_option', {
    id: run.id,
    time: fmtTime(run.started_at),
    ok: run.success,
    total: run.total,
    trigger: t(`viewer.trigger.${run.trigger}`),
  });
}

function renderRunPicker() {
  const select = $('#run-picker');
  clear(select);
  select.append(h('option', { value: '', text: t('viewer.run_latest') }));
  for (const run of state.runs) {
    select.append(h('option', { value: String(run.id), text: runLabel(run) }));
  }
  select.append(h('option', { value: 'all', text: t('viewer.run_all') }));
  // A run older than the 200 listed still shows, by its id.
  if (state.run && state.run !== 'all' && !state.runs.some((r) => String(r.id) === state.run)) {
    select.append(h('option', { value: state.run, text: `#${state.run}` }));
  }
  select.value = state.run;
}

function fillSelect(select, values, facet, label) {
  const current = select.value || state.filter[select.name];
  clear(select);
  select.append(h('option', { value: '', text: t('viewer.filter.any') }));
  const known = new Set();
  for (const v of values) {
    known.add(v);
    const n = facet?.[v];
    select.append(h('option', { value: v, text: n === undefined ? label(v) : `${label(v)} (${fmtNumber(n)})` }));
  }
  for (const [v, n] of Object.entries(facet || {})) {
    if (!known.has(v)) select.append(h('option', { value: v, text: `${label(v)} (${fmtNumber(n)})` }));
  }
  select.value = current;
}

function renderFilters() {
  const facets = state.page?.facets || {};
  fillSelect($('#f-status'), ['ok', 'slow', 'fail'], facets.status || {}, (v) => t(`status.${v}`));
  fillSelect($('#f-class'), Object.keys(facets.error_class || {}).sort(), facets.error_class, classLabel);
  fillSelect($('#f-protocol'), ['openai', 'anthropic', 'gemini'], facets.protocol || {}, (v) => v);
  fillSelect($('#f-route'), ['chat', 'responses', 'anthropic', 'gemini'], facets.route || {}, (v) => v);
  // Rows that arrive while someone is typing a search must not wipe what they typed.
  const q = $('#f-q');
  if (document.activeElement !== q) q.value = state.filter.q;
  $('#f-clear').hidden = !FILTERS.some((k) => state.filter[k]);
}

function renderSummary() {
  const page = state.page;
  const run = page.run;
  const box = clear($('#summary'));
  const stat = (label, value, cls = '') => h('div', { class: 'lv-stat' },
    h('div', { class: 'stat-label', text: label }),
    h('div', { class: `stat-value ${cls}`, text: value }));
  const facets = page.facets.status || {};
  const all = Object.values(facets).reduce((a, b) => a + b, 0);
  const passed = (facets.ok || 0) + (facets.slow || 0);
  const rate = all ? (100 * passed) / all : null;
  // Means over every page of what the filter keeps, from the API.
  const means = page.passed_means || {};
  box.append(
    stat(t('viewer.stat.rate'), rate === null ? '—' : `${fmtNumber(rate, 1)}%`,
      rate === null ? '' : rate >= 99.5 ? 'ok' : rate >= 50 ? 'warn' : 'bad'),
    stat(t('viewer.stat.avg'), fmtMs(means.total_ms)),
    stat(t('viewer.stat.ttft'), fmtMs(means.ttft_ms)),
    stat(t('viewer.stat.rows'), fmtNumber(all)),
  );
  if (run) box.append(stat(t('viewer.stat.run_state'), `#${run.id} · ${run.result ? t(`status.${run.result}`) : t(`viewer.run_status.${run.status}`)}`));
}

// ---- the list ------------------------------------------------------------------------

function renderRows() {
  const page = state.page;
  const list = clear($('#rows'));
  if (!page.items.length) {
    const empty = state.runs.length || state.run === 'all' ? t('viewer.none') : t('viewer.no_runs');
    list.append(h('li', { class: 'empty lv-empty', text: empty }));
  }
  for (const row of page.items) {
    const status = statusOf(row);
    const item = h('li', {},
      h('button', {
        type: 'button', class: `lv-row lv-row-${status}`, 'aria-current': row.id === state.selected ? 'true' : null,
        dataset: { id: row.id }, onclick: () => select(row.id, true),
      },
      h('span', { class: 'lv-model', text: row.model }),
      h('span', { class: 'lv-time', text: fmtTime(row.timestamp) }),
      h('span', { class: 'lv-meta' },
        h('span', { class: `badge badge-${row.success ? 'ok' : 'bad'} mono`, text: row.status_code ?? '—' }),
        h('span', { class: 'lv-proto', text: `${row.protocol}${row.route && row.route !== row.protocol ? ` · ${row.route}` : ''}` }),
        row.error_class ? h('span', { class: 'badge badge-bad', text: classLabel(row.error_class) }) : null,
        status === 'slow' ? h('span', { class: 'badge badge-warn', text: t('status.slow') }) : null,
        row.model_mismatch ? h('span', { class: 'badge badge-warn', title: t('viewer.model.mismatch'), text: '≠' }) : null),
      h('span', { class: 'lv-latency mono', text: fmtMs(row.total_ms ?? (row.duration != null ? row.duration * 1000 : null)) })));
    list.append(item);
  }
  const from = page.total ? state.offset + 1 : 0;
  const to = state.offset + page.items.length;
  $('#showing').textContent = t('viewer.showing', { from: fmtNumber(from), to: fmtNumber(to), total: fmtNumber(page.total) });
  $('#prev').disabled = state.offset === 0;
  $('#next').disabled = to >= page.total;
}

function select(id, focusDetail) {
  state.selected = id;
  for (const b of document.querySelectorAll('#rows .lv-row')) {
    if (Number(b.dataset.id) === id) b.setAttribute('aria-current', 'true'); else b.removeAttribute('aria-current');
  }
  syncAddress();
  renderDetail();
  if (focusDetail) {
    document.body.classList.add('show-detail');
    if (window.matchMedia('(max-width: 760px)').matches) $('#detail-title')?.focus();
  }
}

// Up/down move through the list, as in a mail client.
function onListKey(e) {
  if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
  const buttons = [...document.querySelectorAll('#rows .lv-row')];
  const i = buttons.indexOf(document.activeElement);
  if (i < 0) return;
  const next = buttons[e.key === 'ArrowDown' ? Math.min(i + 1, buttons.length - 1) : Math.max(i - 1, 0)];
  e.preventDefault();
  next.focus();
  select(Number(next.dataset.id), false);
}

// ---- the detail pane -----------------------------------------------------------------

function field(label, value, cls = '') {
  return h('div', { class: 'lv-field' },
    h('div', { class: 'label', text: label }),
    h('div', { class: `lv-field-value ${cls}`, text: value ?? '—' }));
}

function timingBar(label, ms, max) {
  return h('div', { class: 'lv-timing' },
    h('span', { class: 'lv-timing-label', text: label }),
    h('span', { class: 'bar' }, h('span', { class: widthClass(ms, max) })),
    h('span', { class: 'lv-timing-value mono', text: fmtMs(ms) }));
}

function overview(row) {
  const total = row.total_ms ?? (row.duration != null ? row.duration * 1000 : null);
  const mismatch = row.model_mismatch;
  return h('div', { class: 'lv-overview' },
    h('div', { class: 'lv-grid' },
      field(t('viewer.field.protocol'), row.protocol),
      field(t('viewer.field.route'), row.route),
      field(t('viewer.field.endpoint'), row.endpoint),
      field(t('viewer.field.stream'), row.stream ? t('viewer.yes') : t('viewer.no')),
      field(t('viewer.field.http'), row.status_code, row.success ? 'ok' : 'bad'),
      field(t('viewer.field.class'), row.error_class ? classLabel(row.error_class) : '—', row.error_class ? 'bad' : ''),
      field(t('viewer.field.attempts'), row.attempts),
      field(t('viewer.field.transport'), row.transport_success ? t('viewer.transport.ok') : t('viewer.transport.fail')),
      field(t('viewer.field.path'), row.path, 'mono'),
      field(t('viewer.field.rule'), row.route_rule, 'mono'),
      field(t('viewer.field.tool_calls'), row.tool_calls_count),
      field(t('viewer.field.run'), `#${row.run_id}`)),
    h('h3', { text: t('viewer.timings') }),
    h('div', { class: 'lv-timings' },
      timingBar(t('viewer.ttfb'), row.ttfb_ms, total),
      timingBar(t('viewer.ttft'), row.ttft_ms, total),
      timingBar(t('viewer.total'), total, total)),
    h('h3', { text: t('viewer.tokens') }),
    h('div', { class: 'lv-grid' },
      field(t('viewer.tokens.output'), row.output_tokens == null ? '—'
        : `${fmtNumber(row.output_tokens)}${row.tokens_estimated ? ` (${t('viewer.tokens.estimated')})` : ''}`),
      field(t('viewer.tokens.rate'), row.tokens_per_s == null ? '—' : fmtNumber(row.tokens_per_s, 1))),
    h('h3', { text: t('viewer.model') }),
    h('div', { class: 'lv-grid' },
      field(t('viewer.model.asked'), row.model, 'mono'),
      field(t('viewer.model.answered'), row.returned_model, `mono ${mismatch ? 'warn' : ''}`)),
    h('p', { class: `lv-mismatch ${mismatch ? 'warn' : 'muted'}`, role: mismatch ? 'note' : null },
       mismatch ? t('viewer.model.mismatch') : (row.returned_model ? t('viewer.model.match') : '')));
}

function textBlock(text, empty) {
  if (!text) return h('p', { class: 'muted', text: empty });
  return h('div', { class: 'lv-text' },
    copyButton(text),
    h('pre', { class: 'lv-pre', tabindex: '0', text }));
}

function renderDetail() {
  const pane = clear($('#detail'));
  const row = state.page?.items.find((r) => r.id === state.selected);
  if (!row) {
    document.body.classList.remove('show-detail');
    pane.append(h('p', { class: 'muted lv-pick', text: t('viewer.pick') }));
    return;
  }
  const status = statusOf(row);
  const tabs = [
    ['overview', t('viewer.tab.overview')],
    ['reply', t('viewer.tab.reply')],
    ['error', t('viewer.tab.error')],
    ['raw', t('viewer.tab.raw')],
  ];
  const body = () => {
    switch (state.tab) {
      case 'reply': return textBlock(row.content, t('viewer.reply.empty'));
      case 'error': return textBlock(row.error, t('viewer.error.none'));
      case 'raw': return textBlock(JSON.stringify(row, null, 2), '');
      default: return overview(row);
    }
  };
  const panel = h('div', { class: 'lv-panel', role: 'tabpanel', id: 'detail-panel', 'aria-labelledby': `tab-${state.tab}` }, body());
  const tabList = h('div', { class: 'lv-tabs', role: 'tablist', 'aria-label': row.model },
    tabs.map(([key, label]) => h('button', {
      type: 'button', role: 'tab', id: `tab-${key}`, class: 'lv-tab',
      'aria-selected': String(key === state.tab), tabindex: key === state.tab ? '0' : '-1',
      'aria-controls': 'detail-panel',
      onclick: () => { state.tab = key; renderDetail(); $(`#tab-${key}`).focus(); },
      onkeydown: (e) => {
        const i = tabs.findIndex(([k]) => k === state.tab);
        const d = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
        if (!d) return;
        e.preventDefault();
        state.tab = tabs[(i + d + tabs.length) % tabs.length][0];
        renderDetail();
        $(`#tab-${state.tab}`).focus();
      },
    }, label, key === 'error' && row.error ? h('span', { class: 'dot', dataset: { status: 'fail' }, 'aria-hidden': 'true' }) : null)));
  pane.append(
    h('button', { type: 'button', class: 'btn btn-ghost lv-back', onclick: () => {
      document.body.classList.remove('show-detail');
      document.querySelector(`#rows .lv-row[data-id="${row.id}"]`)?.focus();
    } }, icon('chevron', 'icon lv-back-icon'), t('viewer.back_to_list')),
    h('div', { class: 'lv-head' },
      h('div', {},
        h('h2', { id: 'detail-title', tabindex: '-1', text: row.model }),
        h('p', { class: 'muted' }, fmtDateTime(row.timestamp), ` · ID ${row.id}`)),
      h('div', { class: 'lv-status' },
        h('span', { class: `badge badge-${status === 'fail' ? 'bad' : status === 'slow' ? 'warn' : 'ok'}`, text: t(`status.${status}`) }),
        h('span', { class: 'muted mono', text: fmtMs(row.total_ms ?? (row.duration != null ? row.duration * 1000 : null)) }))),
    tabList,
    panel);
}

// ---- wiring --------------------------------------------------------------------------

function onFilterChange(key, value) {
  state.filter[key] = value;
  state.offset = 0;
  loadRows({ keepSelection: false }).catch(showError);
}

function showError(e) {
  if (e?.name === 'AbortError') return;
  const msg = e instanceof ApiError && e.status === 404 ? t('viewer.not_found') : (e.detail || e.message || String(e));
  const box = $('#page-error');
  box.textContent = msg;
  box.hidden = false;
}

function wire() {
  $('#run-picker').addEventListener('change', (e) => {
    state.run = e.target.value;
    state.offset = 0;
    loadRows({ keepSelection: false }).catch(showError);
  });
  for (const [id, key] of [['#f-status', 'status'], ['#f-class', 'error_class'], ['#f-protocol', 'protocol'], ['#f-route', 'route']]) {
    $(id).addEventListener('change', (e) => onFilterChange(key, e.target.value));
  }
  let timer = null;
  $('#f-q').addEventListener('input', (e) => {
    clearTimeout(timer);
    const q = e.target.value.trim();
    timer = setTimeout(() => onFilterChange('q', q), 250);
  });
  $('#f-clear').addEventListener('click', () => {
    for (const k of FILTERS) state.filter[k] = '';
    state.offset = 0;
    loadRows({ keepSelection: false }).catch(showError);
  });
  $('#prev').addEventListener('click', () => {
    state.offset = Math.max(0, state.offset - PAGE);
    loadRows({ keepSelection: false }).catch(showError);
  });
  $('#next').addEventListener('click', () => {
    state.offset += PAGE;
    loadRows({ keepSelection: false }).catch(showError);
  });
  $('#rows').addEventListener('keydown', onListKey);
  document.addEventListener('langchange', () => {
    renderHeader();
    renderRunPicker();
    if (state.page) { renderFilters(); renderSummary(); renderRows(); renderDetail(); }
  });
}

async function main() {
  initPage();
  wire();
  if (!Number.isInteger(state.targetId) || state.targetId < 1) {
    showError(new Error(t('viewer.no_target')));
    return;
  }
  try {
    await loadRuns();
    await loadRows();
  } catch (e) {
    showError(e);
    return;
  }
  connectEvents({
    onState: showConnectionState,
    onEvent: (ev) => {
      if (ev.type === 'resync' || (ev.type === 'run_completed' && ev.target_id === state.targetId)) {
        loadRuns().then(() => {
          // Only the "latest run" view moves on its own; a chosen run stays put.
          if (state.run === '') {
            if (ev.type === 'run_completed') toast(t('viewer.live.new_run'));
            return loadRows();
          }
          return null;
        }).catch(showError);
      } else if (ev.type === 'run_started' && ev.target_id === state.targetId) {
        loadRuns().catch(showError);
      }
    },
  });
}

main();
