// The admin panel's resources: CPU (from two samples of the cgroup's CPU time), memory
// against its limit, the process, database and run-log sizes; refreshed every 5 s
// while the switch is on and the tab is visible.
import { $, h, clear } from '../dom.js';
import { t } from '../i18n.js';
import { api } from '../api.js';
import { fmtBytes, fmtNumber, fmtDateTime } from '../time.js';

let last = null;
let timer = null;

function tile(label, value, sub) {
  return h('div', { class: 'tile' },
    h('div', { class: 'eyebrow', text: label }),
    h('div', { class: 'tile-value', text: value }),
    sub ? h('div', { class: 'small muted', text: sub }) : null);
}

function duration(s) {
  if (s === null || s === undefined) return '—';
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${hh}h` : hh ? `${hh}h ${m}m` : `${m}m ${Math.floor(s % 60)}s`;
}

export async function refreshResources() {
  let r;
  try { r = await api('/api/admin/resources'); } catch (e) { $('#res-note').textContent = e.detail || e.message; return; }
  const c = r.container || {};
  const item = r.item || {};
  const cores = c.cpu_limit_cores || item.host?.cpus || null;
  let cpu = null;
  if (last && c.cpu_usage_seconds_total !== null && last.cpu !== null) {
    const dt = (r.sample_time_ms - last.at) / 1000;
    if (dt > 0 && cores) cpu = ((c.cpu_usage_seconds_total - last.cpu) / dt / cores) * 100;
  }
  last = { at: r.sample_time_ms, cpu: c.cpu_usage_seconds_total ?? null };
  const memLimit = c.memory_limit_bytes ?? null;
  const mem = c.memory_usage_bytes ?? null;
  clear($('#res-tiles')).append(
    tile(t('admin.res.cpu'), cpu === null ? t('admin.res.collecting') : `${fmtNumber(Math.max(0, cpu), 1)}%`),
    tile(t('admin.res.cpu_limit'), c.cpu_limit_cores ? t('admin.res.cores', { n: fmtNumber(c.cpu_limit_cores, 2) }) : t('admin.res.no_limit'),
      item.host?.cpus ? t('admin.res.host_cpus', { n: item.host.cpus }) : null),
    tile(t('admin.res.memory'), `${fmtBytes(mem)} / ${memLimit ? fmtBytes(memLimit) : t('admin.res.no_limit')}`,
      memLimit && mem !== null ? t('admin.res.mem_rate', { p: fmtNumber((mem / memLimit) * 100, 1) }) : null),
    tile(t('admin.res.process'), fmtBytes(item.process?.rss_bytes),
      item.process ? t('admin.res.process_sub', { cpu: fmtNumber(item.process.cpu_percent_avg, 1), threads: item.process.threads }) : null),
    tile(t('admin.res.database'), fmtBytes(item.db_bytes), t('admin.res.logs', { size: fmtBytes(item.log_dir_bytes) })),
    tile(t('admin.res.uptime'), duration(item.uptime_s), item.started_at ? fmtDateTime(item.started_at) : null),
  );
  $('#res-updated').textContent = t('admin.res.updated', { time: fmtDateTime(r.sample_time_ms / 1000) });
  $('#res-note').textContent = c.available ? '' : t('admin.res.no_cgroup');
}

function schedule() {
  clearInterval(timer);
  if ($('#res-auto').checked) timer = setInterval(() => { if (!document.hidden) refreshResources(); }, 5000);
}

export function initResources() {
  $('#res-refresh').addEventListener('click', refreshResources);
  $('#res-auto').addEventListener('change', schedule);
  // CPU use is the difference of two samples: take the second one soon.
  refreshResources().then(() => setTimeout(refreshResources, 1000));
  schedule();
}
