// Times and durations, in the viewer's time zone and language. API timestamps are Unix
// seconds (floats).
import { lang } from './i18n.js';

const sameDay = (a, b) => a.toDateString() === b.toDateString();

/** "14:03:27" today, else "Nov 25, 14:03". */
export function fmtTime(ts) {
  if (ts === null || ts === undefined) return '—';
  const d = new Date(ts * 1000);
  const opts = sameDay(d, new Date())
    ? { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false }
    : { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false };
  return new Intl.DateTimeFormat(lang(), opts).format(d);
}

/** Full date and time with seconds, for tooltips and details. */
export function fmtDateTime(ts) {
  if (ts === null || ts === undefined) return '—';
  return new Intl.DateTimeFormat(lang(), {
    year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
  }).format(new Date(ts * 1000));
}

/** "3 min ago", "in 2 h". */
export function fmtAgo(ts, now = Date.now() / 1000) {
  if (ts === null || ts === undefined) return '—';
  const diff = ts - now;
  const abs = Math.abs(diff);
  const rtf = new Intl.RelativeTimeFormat(lang(), { numeric: 'auto' });
  if (abs < 45) return rtf.format(Math.round(diff), 'second');
  if (abs < 2700) return rtf.format(Math.round(diff / 60), 'minute');
  if (abs < 86400 * 1.5) return rtf.format(Math.round(diff / 3600), 'hour');
  return rtf.format(Math.round(diff / 86400), 'day');
}

/** A duration in milliseconds: "850 ms", "1.24 s", "2 min 5 s". */
export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

export function fmtNumber(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  return new Intl.NumberFormat(lang(), { maximumFractionDigits: digits }).format(n);
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${fmtNumber(n, i ? 1 : 0)} ${units[i]}`;
}
