// The analysis page (analysis.html?target_id=&window=24h|7d|30d&model=): summary cards,
// success rate, latency and error classes over time from the rollups, uptime per model
// over 24 h / 7 d / 30 d, latency by model, the most frequent errors and a sortable
// per-model table. Charts are uPlot (vendored), redrawn on theme, language and size.
import uPlot from '/vendor/uplot/uPlot.esm.js';
import { h, $, clear } from './dom.js';
import { t, lang, addCatalogue } from './i18n.js';
import { api, ApiError } from './api.js';
import { initPage, showConnectionState } from './page.js';
import { connectEvents } from './events.js';
import { fmtAgo, fmtDateTime, fmtMs, fmtNumber } from './time.js';
import analysisStrings from './i18n/analysis.js';
import viewerStrings from './i18n/viewer.js';
import { classLabel, widthClass } from './probe-view.js';
import { WINDOWS, inWindow, totals, series, perModel, topClass } from './analysis-data.js';

addCatalogue(analysisStrings);
addCatalogue(viewerStrings);

const params = new URL(window.location.href).searchParams;
const state = {
  targetId: Number.parseInt(params.get('target_id') || '', 10),
  window: WINDOWS[params.get('window')] ? params.get('window') : '24h',
  model: params.get('model') || '',
  hourly: [],
  daily: [],
  errors: [],
  target: null,
  sort: { key: 'model', dir: 1 },
};
const charts = [];

// Class colours: fixed per class, so a class keeps its colour across windows.
const CLASS_COLOURS = {
  auth: '#e11d48', quota: '#f97316', rate_limit: '#eab308', model_not_found: '#a855f7',
  bad_request: '#ec4899', upstream_5xx: '#ef4444', timeout: '#0ea5e9', network: '#14b8a6',
  tls: '#64748b', bad_response: '#8b5cf6', stream_broken: '#f59e0b', wrong_answer: '#84cc16',
  content_filter: '#06b6d4',
};

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function syncAddress() {
  const url = new URL(window.location.href);
  url.searchParams.set('window', state.window);
  if (state.model) url.searchParams.set('model', state.model); else url.searchParams.delete('model');
  window.history.replaceState(null, '', `${url.pathname}?${url.searchParams}`);
}

// ---- loading -------------------------------------------------------------------------

async function load() {
  const id = state.targetId;
  const days = state.window === '24h' ? 1 : state.window === '7d' ? 7 : 30;
  const [target, hourly, daily, errors] = await Promise.all([
    api(`/api/targets/${id}`),
    api(`/api/targets/${id}/stats`, { query: { period: 'hour', days: 8 } }),
    api(`/api/targets/${id}/stats`, { query: { period: 'day', days: 31 } }),
    api(`/api/targets/${id}/errors`, { query: { days, limit: 10 } }),
  ]);
  state.target = target.item;
  state.hourly = hourly.items || [];
  state.daily = daily.items || [];
  state.errors = errors.items || [];
  render();
}

function rowsOf(windowKey, model = state.model) {
  const source = WINDOWS[windowKey].period === 'hour' ? state.hourly : state.daily;
  return inWindow(source, windowKey, model);
}

// ---- rendering -----------------------------------------------------------------------

function render() {
  const target = state.target;
  $('#target-name').textContent = target.name;
  document.title = `${target.name} · ${t('analysis.title')} · apimon`;
  $('#to-logs').href = `/viewer.html?target_id=${state.targetId}`;
  for (const b of document.querySelectorAll('[data-window]')) {
    b.setAttribute('aria-pressed', String(b.dataset.window === state.window));
  }
  renderModelPicker();
  const rows = rowsOf(state.window);
  const empty = rows.length === 0;
  $('#empty').hidden = !empty;
  renderCards(rows);
  renderCharts(rows);
  renderByModel();
  renderUptime();
  renderTopErrors();
  renderTable();
  $('#weighted-note').hidden = Boolean(state.model);
}

function renderModelPicker() {
  const select = $('#model-picker');
  const models = [...new Set([...state.hourly, ...state.daily].map((r) => r.model))].sort();
  clear(select);
  select.append(h('option', { value: '', text: t('analysis.model.all') }));
  for (const m of models) select.append(h('option', { value: m, text: m }));
  if (state.model && !models.includes(state.model)) select.append(h('option', { value: state.model, text: state.model }));
  select.value = state.model;
}

function card(label, value, hint, cls = '') {
  return h('div', { class: 'card an-card' },
    h('div', { class: 'an-card-label', text: label }),
    h('div', { class: `an-card-value ${cls}`, text: value }),
    h('div', { class: 'an-card-hint', text: hint }));
}

function renderCards(rows) {
  const tt = totals(rows);
  const top = topClass(tt.classes);
  const rateClass = tt.rate === null ? '' : tt.rate >= 99 ? 'ok' : tt.rate >= 80 ? 'warn' : 'bad';
  clear($('#cards')).append(
    card(t('analysis.card.probes'), fmtNumber(tt.count), t('analysis.card.probes_hint', { models: tt.models.size })),
    card(t('analysis.card.rate'), tt.rate === null ? '—' : `${fmtNumber(tt.rate, 1)}%`,
      t('analysis.card.rate_hint', { ok: fmtNumber(tt.success), slow: fmtNumber(tt.slow) }), rateClass),
    card(t('analysis.card.latency'), fmtMs(tt.p50), t('analysis.card.latency_hint', { p95: fmtMs(tt.p95) }), 'accent'),
    card(t('analysis.card.ttft'), fmtMs(tt.ttft), t('analysis.card.ttft_hint'), 'accent'),
    card(t('analysis.card.failures'), fmtNumber(tt.fail),
      t('analysis.card.failures_hint', { cls: top ? classLabel(top) : t('analysis.card.failures_none') }), tt.fail ? 'bad' : ''),
  );
}

// ---- charts --------------------------------------------------------------------------

function axisTime(step) {
  const fmt = new Intl.DateTimeFormat(lang(), step >= 86400
    ? { month: 'short', day: 'numeric' }
    : { month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false });
  return (u, splits) => splits.map((s) => fmt.format(new Date(s * 1000)));
}

function baseOptions(width, step, yLabel) {
  const grid = { stroke: css('--border'), width: 1 };
  const axis = { stroke: css('--muted'), grid, ticks: grid, font: '11px system-ui, sans-serif' };
  return {
    width,
    height: 220,
    // Room on the right for the last time label.
    padding: [8, 28, 0, 0],
    scales: { x: { time: true } },
    axes: [
      { ...axis, values: axisTime(step), space: 90 },
      { ...axis, label: yLabel, size: 56, labelSize: 16, labelFont: '11px system-ui, sans-serif' },
    ],
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    legend: { live: true },
  };
}

function dateValue(u, v) {
  return v == null ? '—' : fmtDateTime(v);
}

function makeChart(container, opts, data, summary) {
  clear(container);
  container.setAttribute('aria-label', summary);
  container.dataset.points = String(data[0].length);
  container.dataset.filled = String(data.slice(1).reduce((n, s) => n + s.filter((v) => v !== null && v !== undefined && v !== 0).length, 0));
  const plot = new uPlot(opts, data, container);
  charts.push({ plot, container });
  return plot;
}

function renderCharts(rows) {
  for (const c of charts.splice(0)) c.plot.destroy();
  const s = series(rows, state.window);
  const step = WINDOWS[state.window].step;
  const bucketWord = t(`analysis.bucket.${WINDOWS[state.window].period}`);
  const width = (el) => Math.max(260, el.clientWidth);
  const ok = css('--ok-bar');
  const accent = css('--accent');

  // Runs come every interval, buckets are hours: join the measured points across
  // hours without probes, and mark each point while there are few enough to see.
  const sparse = (xs) => xs.filter((v) => v !== null).length <= 60;
  const line = (xs) => ({ spanGaps: true, points: { show: sparse(xs), size: 5 } });

  const rateBox = $('#chart-rate');
  const rates = s.rate.filter((v) => v !== null);
  const rateOpts = baseOptions(width(rateBox), step, '%');
  rateOpts.scales.y = { range: [0, 100] };
  rateOpts.series = [
    { value: dateValue },
    { label: t('analysis.series.rate'), stroke: ok, fill: `${ok}22`, width: 2, ...line(s.rate),
      value: (u, v) => (v == null ? '—' : `${fmtNumber(v, 1)}%`) },
  ];
  makeChart(rateBox, rateOpts, [s.x, s.rate], rates.length
    ? t('analysis.chart.summary_rate', { bucket: bucketWord, n: rates.length, min: fmtNumber(Math.min(...rates), 1), max: fmtNumber(Math.max(...rates), 1) })
    : t('analysis.empty'));

  const latBox = $('#chart-latency');
  const p50s = s.p50.filter((v) => v !== null);
  const latOpts = baseOptions(width(latBox), step, 'ms');
  const msValue = (u, v) => fmtMs(v);
  latOpts.series = [
    { value: dateValue },
    { label: t('analysis.series.p50'), stroke: accent, width: 2, value: msValue, ...line(s.p50) },
    { label: t('analysis.series.p95'), stroke: css('--warn-dot'), width: 2, dash: [6, 4], value: msValue, ...line(s.p95) },
    { label: t('analysis.series.ttft'), stroke: css('--gemini'), width: 2, value: msValue, ...line(s.ttft) },
  ];
  makeChart(latBox, latOpts, [s.x, s.p50, s.p95, s.ttft], p50s.length
    ? t('analysis.chart.summary_latency', { bucket: bucketWord, min: fmtMs(Math.min(...p50s)), max: fmtMs(Math.max(...p50s)) })
    : t('analysis.empty'));

  // Error classes as stacked bars: each series is drawn as the running sum, largest
  // first, so every class shows as its own band; the legend shows its own count.
  const errBox = $('#chart-errors');
  const classes = Object.keys(s.classes).sort((a, b) => sumOf(s.classes[b]) - sumOf(s.classes[a]));
  const stacked = [];
  let running = s.x.map(() => 0);
  for (const c of classes) {
    running = running.map((v, i) => v + s.classes[c][i]);
    stacked.push(running);
  }
  const errOpts = baseOptions(width(errBox), step, '#');
  errOpts.scales.y = { range: (u, min, max) => [0, Math.max(1, max)] };
  errOpts.series = [{ value: dateValue }];
  const data = [s.x];
  for (let i = classes.length - 1; i >= 0; i -= 1) {
    const c = classes[i];
    const colour = CLASS_COLOURS[c] || css('--idle');
    errOpts.series.push({
      label: classLabel(c), stroke: colour, fill: colour, width: 0,
      paths: uPlot.paths.bars({ size: [0.7, 40], align: 0 }),
      points: { show: false },
      value: (u, v, si, di) => (di == null ? '—' : fmtNumber(s.classes[c][di])),
    });
    data.push(stacked[i].map((v) => v || null));
  }
  const failTotal = classes.reduce((n, c) => n + sumOf(s.classes[c]), 0);
  makeChart(errBox, errOpts, data, failTotal
    ? t('analysis.chart.summary_errors', { n: failTotal, list: classes.map((c) => `${classLabel(c)} ${sumOf(s.classes[c])}`).join(', ') })
    : t('analysis.top_errors.none'));
}

function sumOf(xs) {
  return xs.reduce((a, b) => a + (b || 0), 0);
}

function resizeCharts() {
  for (const { plot, container } of charts) plot.setSize({ width: Math.max(260, container.clientWidth), height: 220 });
}

// ---- per model -----------------------------------------------------------------------

function renderByModel() {
  const models = perModel(rowsOf(state.window, '')).filter((m) => m.p50 !== null);
  const max = Math.max(1, ...models.map((m) => m.p95 ?? m.p50));
  const list = clear($('#by-model'));
  for (const m of models.sort((a, b) => b.p50 - a.p50)) {
    list.append(h('li', { class: 'an-bar-row' },
      h('span', { class: 'an-bar-model mono', text: m.model, title: m.model }),
      h('span', { class: 'an-bars' },
        h('span', { class: 'bar an-bar-p95' }, h('span', { class: widthClass(m.p95, max) })),
        h('span', { class: 'bar an-bar-p50' }, h('span', { class: widthClass(m.p50, max) }))),
      h('span', { class: 'an-bar-value mono' }, `${fmtMs(m.p50)} / ${fmtMs(m.p95)}`)));
  }
  if (!models.length) list.append(h('li', { class: 'muted', text: t('analysis.empty') }));
}

function rateCell(t0) {
  if (!t0 || !t0.count) return h('td', { class: 'num muted', text: '—' });
  const cls = t0.rate >= 99 ? '' : t0.rate >= 80 ? 'warn' : 'bad';
  return h('td', { class: 'num' },
    h('span', { class: 'an-rate' },
      h('span', { class: 'bar' }, h('span', { class: `${widthClass(t0.rate, 100)} ${cls}` })),
      h('span', { class: `an-rate-value ${cls}`, text: `${fmtNumber(t0.rate, 1)}%` })));
}

function renderUptime() {
  const windows = ['24h', '7d', '30d'];
  const per = Object.fromEntries(windows.map((w) => [w, new Map(perModel(rowsOf(w, '')).map((m) => [m.model, m]))]));
  const models = [...new Set(windows.flatMap((w) => [...per[w].keys()]))].sort();
  const body = clear($('#uptime-body'));
  for (const m of models) {
    body.append(h('tr', {},
      h('th', { scope: 'row', class: 'mono an-model-cell', text: m }),
      windows.map((w) => rateCell(per[w].get(m)))));
  }
  if (!models.length) body.append(h('tr', {}, h('td', { colspan: 4, class: 'muted', text: t('analysis.empty') })));
}

function renderTopErrors() {
  const list = clear($('#top-errors'));
  if (!state.errors.length) {
    list.append(h('li', { class: 'muted', text: t('analysis.top_errors.none') }));
    return;
  }
  for (const e of state.errors) {
    const link = new URL('/viewer.html', window.location.origin);
    link.searchParams.set('target_id', state.targetId);
    link.searchParams.set('scope', 'all');
    link.searchParams.set('status', 'fail');
    if (e.error_class) link.searchParams.set('error_class', e.error_class);
    list.append(h('li', { class: 'an-error' },
      h('div', { class: 'an-error-head' },
        e.error_class ? h('span', { class: 'badge badge-bad', text: classLabel(e.error_class) }) : null,
        h('span', { class: 'an-error-count', text: t('analysis.top_errors.times', { n: fmtNumber(e.count) }) }),
        h('span', { class: 'muted small', title: fmtDateTime(e.last_seen), text: t('analysis.top_errors.last', { time: fmtAgo(e.last_seen) }) })),
      h('a', { class: 'an-error-text mono', href: `${link.pathname}${link.search}`, text: e.error || classLabel(e.error_class) }),
      h('div', { class: 'muted small an-error-models', title: e.models.join(', ') },
        e.model_count > 3 ? `${e.models.slice(0, 3).join(', ')} … ${t('analysis.top_errors.models', { n: e.model_count })}` : e.models.join(', '))));
  }
}

const COLUMNS = [
  ['model', 'analysis.col.model', (m) => m.model],
  ['count', 'analysis.col.probes', (m) => m.count],
  ['rate', 'analysis.col.rate', (m) => m.rate ?? -1],
  ['p50', 'analysis.col.p50', (m) => m.p50 ?? Infinity],
  ['p95', 'analysis.col.p95', (m) => m.p95 ?? Infinity],
  ['ttft', 'analysis.col.ttft', (m) => m.ttft ?? Infinity],
  ['slow', 'analysis.col.slow', (m) => m.slow],
  ['fail', 'analysis.col.fail', (m) => m.fail],
];

function renderTable() {
  const head = clear($('#model-head'));
  head.append(h('tr', {},
    COLUMNS.map(([key, label]) => {
      const sorted = state.sort.key === key;
      return h('th', {
        scope: 'col', class: key === 'model' ? '' : 'num',
        'aria-sort': sorted ? (state.sort.dir > 0 ? 'ascending' : 'descending') : null,
      }, h('button', {
        type: 'button', class: 'an-sort', 'aria-label': t('analysis.sort', { col: t(label) }),
        onclick: () => {
          state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
          renderTable();
          head.querySelector(`[data-col="${key}"]`)?.focus();
        },
        dataset: { col: key },
      }, t(label), sorted ? (state.sort.dir > 0 ? ' ↑' : ' ↓') : ''));
    }),
    h('th', { scope: 'col', text: t('analysis.col.top_class') }),
    h('th', { scope: 'col', class: 'sr-only-cell' }, h('span', { class: 'sr-only', text: t('analysis.col.logs') }))));
  const get = COLUMNS.find(([k]) => k === state.sort.key)[2];
  const models = perModel(rowsOf(state.window, '')).sort((a, b) => {
    const x = get(a);
    const y = get(b);
    return (typeof x === 'string' ? x.localeCompare(y) : x - y) * state.sort.dir;
  });
  const body = clear($('#model-body'));
  for (const m of models) {
    const top = topClass(m.classes);
    body.append(h('tr', {},
      h('th', { scope: 'row', class: 'mono an-model-cell', text: m.model }),
      h('td', { class: 'num', text: fmtNumber(m.count) }),
      rateCell(m),
      h('td', { class: 'num mono', text: fmtMs(m.p50) }),
      h('td', { class: 'num mono', text: fmtMs(m.p95) }),
      h('td', { class: 'num mono', text: fmtMs(m.ttft) }),
      h('td', { class: 'num', text: fmtNumber(m.slow) }),
      h('td', { class: `num ${m.fail ? 'an-bad' : ''}`, text: fmtNumber(m.fail) }),
      h('td', {}, top ? h('span', { class: 'badge badge-bad', text: classLabel(top) }) : '—'),
      h('td', {}, h('a', {
        class: 'btn btn-sm', href: `/viewer.html?target_id=${state.targetId}&scope=all&q=${encodeURIComponent(m.model)}`,
        'aria-label': t('analysis.open_logs', { model: m.model }), text: t('analysis.col.logs'),
      }))));
  }
  if (!models.length) body.append(h('tr', {}, h('td', { colspan: 10, class: 'muted', text: t('analysis.empty') })));
}

// ---- wiring --------------------------------------------------------------------------

function showError(e) {
  const msg = e instanceof ApiError && e.status === 404 ? t('analysis.not_found') : (e.detail || e.message || String(e));
  const box = $('#page-error');
  box.textContent = msg;
  box.hidden = false;
}

async function main() {
  initPage();
  for (const b of document.querySelectorAll('[data-window]')) {
    b.addEventListener('click', () => {
      state.window = b.dataset.window;
      syncAddress();
      render();
      // The top errors follow the window; the rollups are loaded for all three.
      api(`/api/targets/${state.targetId}/errors`, { query: { days: state.window === '24h' ? 1 : state.window === '7d' ? 7 : 30, limit: 10 } })
        .then((v) => { state.errors = v.items || []; render(); })
        .catch(showError);
    });
  }
  $('#model-picker').addEventListener('change', (e) => {
    state.model = e.target.value;
    syncAddress();
    render();
  });
  $('#refresh').addEventListener('click', () => load().catch(showError));
  const rerender = () => { if (state.target) render(); };
  document.addEventListener('langchange', rerender);
  document.addEventListener('themechange', rerender);
  let timer = null;
  window.addEventListener('resize', () => { clearTimeout(timer); timer = setTimeout(resizeCharts, 150); });
  if (!Number.isInteger(state.targetId) || state.targetId < 1) {
    showError(new Error(t('analysis.no_target')));
    return;
  }
  syncAddress();
  try {
    await load();
  } catch (e) {
    showError(e);
    return;
  }
  connectEvents({
    onState: showConnectionState,
    onEvent: (ev) => {
      if (ev.type === 'resync' || (ev.type === 'run_completed' && ev.target_id === state.targetId)) load().catch(showError);
    },
  });
}

main();
