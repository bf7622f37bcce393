// The admin panel's proxy usage: requests and tokens over time (a uPlot chart) for the
// last 24 hours, 7 or 30 days, and the same range by key, by channel and by model.
import uPlot from '/vendor/uplot/uPlot.esm.js';
import { $, h, clear } from '../dom.js';
import { t } from '../i18n.js';
import { api } from '../api.js';
import { fmtNumber, fmtMs, fmtTime } from '../time.js';

const RANGES = { '24h': { s: 86400, bucket: 'hour' }, '7d': { s: 7 * 86400, bucket: 'hour' }, '30d': { s: 30 * 86400, bucket: 'day' } };
let range = '24h';
let chart = null;
let channels = [];

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function drawChart(items, since, until, bucket) {
  const box = $('#usage-chart');
  if (chart) { chart.destroy(); chart = null; }
  clear(box);
  const step = bucket === 'hour' ? 3600 : 86400;
  const start = Math.floor(since / step) * step;
  const byStart = new Map(items.map((i) => [i.bucket_start, i]));
  const xs = [];
  const requests = [];
  const tokens = [];
  for (let x = start; x <= until; x += step) {
    const i = byStart.get(x);
    xs.push(x);
    requests.push(i ? i.requests : 0);
    tokens.push(i ? i.tokens : 0);
  }
  const width = Math.max(280, box.clientWidth || 600);
  chart = new uPlot({
    width,
    height: 220,
    series: [
      {},
      { label: t('usage.requests'), stroke: css('--accent'), fill: `${css('--accent')}22`, width: 2, scale: 'req' },
      { label: t('usage.tokens'), stroke: css('--ok-bar'), width: 2, scale: 'tok' },
    ],
    axes: [
      { stroke: css('--muted'), grid: { stroke: css('--border') } },
      { scale: 'req', stroke: css('--muted'), grid: { stroke: css('--border') } },
      { scale: 'tok', side: 1, stroke: css('--muted'), grid: { show: false } },
    ],
    scales: { req: { range: (u, min, max) => [0, Math.max(1, max)] }, tok: { range: (u, min, max) => [0, Math.max(1, max)] } },
    legend: { show: true },
  }, [xs, requests, tokens], box);
}

function table(id, title, items, label) {
  return h('div', { class: 'usage-block' },
    h('h3', { text: title }),
    h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': title },
      h('table', { class: 'table', id },
        h('thead', null, h('tr', null,
          h('th', { scope: 'col', text: label }),
          ['requests', 'errors', 'tokens', 'avg'].map((c) => h('th', { scope: 'col', class: 'num', text: t(`usage.${c}`) })))),
        h('tbody', null, items.length ? items.map((i) => h('tr', null,
          h('td', { class: 'mono', text: i.label }),
          h('td', { class: 'num', text: fmtNumber(i.requests) }),
          h('td', { class: 'num', text: fmtNumber(i.errors) }),
          h('td', { class: 'num', text: fmtNumber(i.tokens) }),
          h('td', { class: 'num', text: fmtMs(i.avg_total_ms) }))) : h('tr', null, h('td', { colspan: 5, class: 'muted', text: t('usage.none') }))))));
}

export async function loadUsage() {
  const r = RANGES[range];
  const until = Date.now() / 1000;
  const since = until - r.s;
  const q = (group_by) => api('/api/proxy/usage', { query: { since, until, group_by } });
  const [series, byKey, byTarget, byModel, ch] = await Promise.all([
    q(r.bucket), q('key'), q('target'), q('model'), api('/api/admin/channels').catch(() => ({ items: [] })),
  ]);
  channels = ch.items || [];
  const totals = series.totals || {};
  clear($('#usage-totals')).append(
    ...[['requests', fmtNumber(totals.requests)], ['errors', fmtNumber(totals.errors)], ['tokens', fmtNumber(totals.tokens)], ['avg', fmtMs(totals.avg_total_ms)]]
      .map(([k, v]) => h('div', { class: 'tile' }, h('div', { class: 'eyebrow', text: t(`usage.${k}`) }), h('div', { class: 'tile-value', text: v }))));
  drawChart(series.items || [], since, until, r.bucket);
  const name = (id) => channels.find((c) => c.id === id)?.name ?? (id === null ? t('usage.no_channel') : `#${id}`);
  clear($('#usage-tables')).append(
    table('usage-by-key', t('usage.by_key'), (byKey.items || []).map((i) => ({ ...i, label: i.key_name || `#${i.key_id}` })), t('usage.key')),
    table('usage-by-target', t('usage.by_target'), (byTarget.items || []).map((i) => ({ ...i, label: name(i.target_id) })), t('usage.channel')),
    table('usage-by-model', t('usage.by_model'), (byModel.items || []).map((i) => ({ ...i, label: i.model })), t('usage.model')));
  $('#usage-updated').textContent = t('admin.res.updated', { time: fmtTime(until) });
}

export function initUsage() {
  const section = $('#proxy-usage');
  const picker = h('div', { class: 'segmented', role: 'group', 'aria-label': t('usage.range') },
    Object.keys(RANGES).map((k) => h('button', {
      type: 'button', class: `btn btn-sm${k === range ? ' active' : ''}`, 'aria-pressed': String(k === range), dataset: { range: k },
      onclick: (ev) => {
        range = k;
        for (const b of picker.querySelectorAll('button')) { b.classList.toggle('active', b === ev.currentTarget); b.setAttribute('aria-pressed', String(b === ev.currentTarget)); }
        loadUsage();
      },
    }, t(`usage.range.${k}`))));
  section.append(
    h('div', { class: 'panel-head' },
      h('div', null, h('div', { class: 'eyebrow', text: t('usage.eyebrow') }), h('h2', { id: 'usage-title', text: t('admin.usage.title') })),
      h('div', { class: 'row' }, picker, h('button', { type: 'button', class: 'btn btn-sm', onclick: loadUsage, text: t('action.refresh') }))),
    h('div', { class: 'tiles', id: 'usage-totals' }),
    h('div', { class: 'usage-chart', id: 'usage-chart', role: 'img', 'aria-label': t('usage.chart') }),
    h('div', { class: 'usage-tables', id: 'usage-tables' }),
    h('p', { class: 'small muted', id: 'usage-updated' }));
  section.hidden = false;
  $('#nav-usage').hidden = false;
  document.addEventListener('themechange', () => loadUsage());
  return loadUsage();
}
