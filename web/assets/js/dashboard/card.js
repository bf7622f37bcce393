// One channel card of the dashboard: header (drag handle, status, name, base URL, last
// run, protocol badges, success bar) and, expanded, its actions and one row per model
// with the last 30 results as a strip.
import { h, icon } from '../dom.js';
import { t } from '../i18n.js';
import { fmtTime, fmtDateTime, fmtMs, fmtNumber } from '../time.js';
import { decodeHistory } from '../history.js';

const PROTOCOLS = ['openai', 'anthropic', 'gemini'];

/** The status shown for a channel: running wins, then disabled, then its last status. */
export function channelStatus(target) {
  if (target.running) return 'running';
  if (!target.enabled) return 'disabled';
  return target.last_status || 'unknown';
}

function widthClass(fraction) {
  return `w-${Math.round(Math.max(0, Math.min(1, fraction)) * 20) * 5}`;
}

function counts(models) {
  const c = { openai: 0, anthropic: 0, gemini: 0 };
  for (const m of models) if (m.protocol in c) c[m.protocol] += 1;
  return c;
}

function successBar(models) {
  const total = models.length;
  const ok = models.filter((m) => m.success).length;
  const rate = total ? ok / total : 0;
  const tone = !total ? '' : rate === 1 ? '' : rate >= 0.5 ? ' warn' : ' bad';
  const label = total ? t('dash.success_of', { ok, total, rate: `${fmtNumber(rate * 100, 0)}%` }) : '—';
  return h('div', { class: 'success' },
    h('div', { class: 'success-label', text: label }),
    h('div', { class: 'bar', role: 'img', 'aria-label': label }, h('span', { class: widthClass(rate) + tone })));
}

function strip(target, model) {
  const points = decodeHistory(target.history_runs, model.history);
  return h('div', { class: 'strip', role: 'list', 'aria-label': t('dash.col.history') },
    points.map((p) => {
      const when = p.ts ? fmtDateTime(p.ts) : '';
      const what = p.status
        ? `${t(`status.${p.status}`)} · ${fmtMs(p.ms)}${p.errorClass ? ` · ${t(`class.${p.errorClass}`)}` : ''}`
        : t('dash.point_none');
      return h('span', { class: 'tick', role: 'listitem', dataset: { status: p.status || 'none' }, title: `${when} — ${what}`, 'aria-label': `${when} — ${what}` });
    }));
}

function modelRow(target, m) {
  const status = m.status || (m.success ? 'ok' : 'fail');
  const latencyMs = m.total_ms ?? (m.duration !== undefined && m.duration !== null ? m.duration * 1000 : null);
  const errorText = m.success ? '' : (m.error || '');
  return h('div', { class: 'model-row', role: 'row', dataset: { model: m.model, status, protocol: m.protocol } },
    h('div', { class: 'm-name', role: 'cell' },
      h('span', { class: 'dot', dataset: { status }, title: t(`status.${status}`) }),
      h('span', { class: 'mono', text: m.model }),
      h('span', { class: `badge badge-${m.protocol}`, text: t(`proto.${m.protocol}`) }),
      m.model_mismatch && m.returned_model ? h('span', { class: 'badge badge-warn', text: t('dash.mismatch', { model: m.returned_model }) }) : null),
    h('div', { class: 'm-num', role: 'cell' }, h('span', { class: 'm-label', text: t('dash.col.latency') }), fmtMs(latencyMs)),
    h('div', { class: 'm-num', role: 'cell' }, h('span', { class: 'm-label', text: t('dash.col.ttft') }), fmtMs(m.ttft_ms)),
    h('div', { class: 'm-num', role: 'cell' }, h('span', { class: 'm-label', text: t('dash.col.tps') }), m.tokens_per_s ? fmtNumber(m.tokens_per_s, 1) : '—'),
    h('div', { class: 'm-error', role: 'cell', title: errorText },
      m.error_class ? h('span', { class: 'badge badge-bad', text: t(`class.${m.error_class}`) }) : null,
      errorText ? h('span', { class: 'm-error-text', text: errorText }) : null),
    h('div', { class: 'm-strip', role: 'cell' }, strip(target, m)));
}

/**
 * Renders a card. `view` = { role, expanded, models (filtered), hiddenModels, sortable,
 * actions: { run, toggle, edit, remove, expand, move } }.
 */
export function renderCard(target, view) {
  const status = channelStatus(target);
  const all = target.latest_models || [];
  const c = counts(all);
  const admin = view.role === 'admin';
  const mayOperate = admin || target.can_operate;
  const bodyId = `card-body-${target.id}`;
  const header = h('div', { class: 'card-head' },
    admin ? h('button', {
      type: 'button', class: 'drag-handle btn btn-ghost btn-icon', 'aria-label': `${t('dash.drag')}: ${target.name}`,
      title: t('dash.drag'), disabled: !view.sortable, dataset: { key: 'drag' },
      onkeydown: (ev) => {
        if (ev.key === 'ArrowUp' || ev.key === 'ArrowDown') { ev.preventDefault(); view.actions.move(target, ev.key === 'ArrowUp' ? -1 : 1); }
      },
    }, icon('grip')) : null,
    h('span', { class: 'dot', dataset: { status }, title: t(`status.${status}`), role: 'img', 'aria-label': t(`status.${status}`) }),
    h('div', { class: 'card-title' },
      h('h2', { class: 'card-name', text: target.name }),
      h('div', { class: 'card-meta' },
        target.base_url ? h('span', { class: 'mono base-url', text: target.base_url, title: target.base_url }) : null,
        h('span', { class: 'last-run', title: target.last_run_at ? fmtDateTime(target.last_run_at) : '' },
          icon('clock', 'icon-sm'), target.last_run_at ? fmtTime(target.last_run_at) : t('dash.never_run')),
        h('span', { class: `badge status-badge badge-${{ healthy: 'ok', degraded: 'warn', down: 'bad', error: 'bad', running: 'accent' }[status] || 'none'}`, text: t(`status.${status}`) }))),
    h('div', { class: 'card-badges' },
      PROTOCOLS.filter((p) => c[p]).map((p) => h('span', { class: `badge badge-${p}`, text: `${t(`proto.${p}`)} ${c[p]}` })),
      h('span', { class: 'badge', text: `${t('proto.total')} ${all.length}` })),
    successBar(all),
    h('button', {
      type: 'button', class: 'btn btn-ghost btn-icon expand', 'aria-expanded': String(view.expanded), 'aria-controls': bodyId,
      'aria-label': `${view.expanded ? t('dash.collapse') : t('dash.expand')}: ${target.name}`, dataset: { key: 'expand' },
      onclick: () => view.actions.expand(target),
    }, icon('chevron')));

  const card = h('article', { class: `card channel${view.expanded ? ' open' : ''}`, dataset: { id: target.id, status }, 'aria-label': target.name }, header);
  if (!view.expanded) return card;

  const actions = h('div', { class: 'card-actions' },
    mayOperate ? h('button', { type: 'button', class: 'btn btn-sm btn-primary', dataset: { key: 'run' }, disabled: target.running || !target.enabled, onclick: () => view.actions.run(target) }, icon('play', 'icon-sm'), t('dash.run')) : null,
    admin ? h('button', { type: 'button', class: 'btn btn-sm', dataset: { key: 'toggle' }, onclick: () => view.actions.toggle(target) }, icon('power', 'icon-sm'), target.enabled ? t('dash.disable') : t('dash.enable')) : null,
    admin ? h('button', { type: 'button', class: 'btn btn-sm', dataset: { key: 'edit' }, onclick: () => view.actions.edit(target) }, icon('edit', 'icon-sm'), t('action.edit')) : null,
    mayOperate ? h('a', { class: 'btn btn-sm', href: `/viewer.html?target_id=${target.id}` }, icon('logs', 'icon-sm'), t('dash.logs')) : null,
    mayOperate ? h('a', { class: 'btn btn-sm', href: `/analysis.html?target_id=${target.id}` }, icon('chart', 'icon-sm'), t('dash.analysis')) : null,
    admin ? h('button', { type: 'button', class: 'btn btn-sm btn-danger-ghost', dataset: { key: 'delete' }, onclick: () => view.actions.remove(target) }, icon('trash', 'icon-sm'), t('action.delete')) : null);

  const rows = view.models.map((m) => modelRow(target, m));
  const body = h('div', { class: 'card-body', id: bodyId },
    actions,
    target.last_error ? h('p', { class: 'form-error', text: t('dash.run_error', { error: target.last_error }) }) : null,
    all.length === 0 ? h('p', { class: 'muted', text: t('dash.no_models_yet') }) : null,
    rows.length ? h('div', { class: 'models', role: 'table', 'aria-label': target.name },
      h('div', { class: 'model-row model-head', role: 'row' },
        ['model', 'latency', 'ttft', 'tps', 'error', 'history'].map((k) => h('div', { role: 'columnheader', class: k === 'model' ? 'm-name' : k === 'history' ? 'm-strip' : k === 'error' ? 'm-error' : 'm-num', text: t(`dash.col.${k}`) }))),
      rows) : null,
    view.hiddenModels ? h('p', { class: 'muted small', text: t('dash.hidden_by_filter', { n: view.hiddenModels }) }) : null);
  card.append(body);
  return card;
}
