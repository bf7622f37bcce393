// Copying a secret to the clipboard, with a fallback where the Clipboard API is refused
// (a page served over plain HTTP on another host is not a secure context).
import { h } from '../dom.js';

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h('textarea', { class: 'sr-only', 'aria-hidden': 'true' });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
}
