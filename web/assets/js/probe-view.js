// How the log viewer and the analysis page show a probe's outcome: its status, its
// error class by name, and a copy button for long text.
import { h, icon } from './dom.js';
import { t } from './i18n.js';
import { toast } from './page.js';

/** `ok`, `slow` or `fail`; rows from the Go program carry no status, only success. */
export function statusOf(row) {
  if (row.status === 'ok' || row.status === 'slow' || row.status === 'fail') return row.status;
  return row.success ? 'ok' : 'fail';
}

/** An error class's name in the page's language (the API's word when unknown). */
export function classLabel(c) {
  if (!c) return '—';
  const key = `class.${c}`;
  const text = t(key);
  return text === key ? c : text;
}

/** Copies `text` to the clipboard; the button says so. */
export function copyButton(text, label = t('action.copy')) {
  const button = h('button', { type: 'button', class: 'btn btn-sm copy', 'aria-label': label }, icon('copy'), h('span', { text: label }));
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.lastChild.textContent = t('action.copied');
      setTimeout(() => { button.lastChild.textContent = label; }, 1500);
    } catch {
      // Clipboard refused (no permission, plain http): select the text instead.
      const pre = button.parentElement?.querySelector('pre, code');
      if (pre) {
        const range = document.createRange();
        range.selectNodeContents(pre);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
      }
      toast(t('copy.select_instead'));
    }
  });
  return button;
}

/** A bar width as one of the stylesheet's 5 % steps (the CSP allows no inline style). */
export function widthClass(part, whole) {
  if (part == null || !whole) return 'w-0';
  return `w-${Math.min(100, Math.max(5, Math.round((20 * part) / whole) * 5))}`;
}
