// What every page shares: the header's language and theme switches, the token dialog
// the API client opens on a 401, toasts, the live-connection notice, confirmation
// dialogs and errors shown by form field. A page calls initPage() first.
import { h, $, clear, icon } from './dom.js';
import { LANGS, lang, setLang, t, applyI18n } from './i18n.js';
import { toggleTheme, theme } from './theme.js';
import { onUnauthorized, setToken } from './api.js';

export function initPage() {
  const select = $('#lang-switch');
  if (select) {
    clear(select);
    for (const l of LANGS) select.append(h('option', { value: l.code, selected: l.code === lang() }, l.label));
    select.addEventListener('change', () => setLang(select.value));
  }
  const themeButton = $('#theme-switch');
  if (themeButton) {
    const label = () => themeButton.setAttribute('aria-label', t(theme() === 'dark' ? 'theme.to_light' : 'theme.to_dark'));
    themeButton.addEventListener('click', () => { toggleTheme(); label(); });
    document.addEventListener('langchange', label);
    document.addEventListener('themechange', label);
    label();
  }
  applyI18n(document);
  document.documentElement.lang = lang();
  onUnauthorized(askToken);
}

// ---- token dialog -------------------------------------------------------------------

let pendingAsk = null;

/** Asks for an API token; resolves true when one was given (the call is retried). */
function askToken(detail) {
  if (pendingAsk) return pendingAsk;
  pendingAsk = new Promise((resolve) => {
    const input = h('input', {
      type: 'password', name: 'token', autocomplete: 'off', required: true, id: 'token-input',
      placeholder: t('token.placeholder'), class: 'input',
    });
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': 'token-title' },
      h('form', { method: 'dialog', class: 'dialog-body' },
        h('h2', { id: 'token-title', text: t('token.title') }),
        h('p', { class: 'muted', text: t('token.explain') }),
        detail ? h('p', { class: 'form-error', role: 'alert', text: detail }) : null,
        h('label', { for: 'token-input', class: 'label', text: t('token.label') }),
        input,
        h('div', { class: 'dialog-actions' },
          h('a', { href: '/admin/login', class: 'btn btn-ghost', text: t('token.admin_login') }),
          h('button', { type: 'button', class: 'btn', value: 'cancel', text: t('action.cancel'),
            onclick: () => dialog.close('cancel') }),
          h('button', { type: 'submit', class: 'btn btn-primary', value: 'ok', text: t('token.use') }))));
    dialog.addEventListener('close', () => {
      const value = input.value.trim();
      const ok = dialog.returnValue === 'ok' && value !== '';
      if (ok) setToken(value);
      dialog.remove();
      pendingAsk = null;
      resolve(ok);
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
  return pendingAsk;
}

// ---- toasts and notices -------------------------------------------------------------

function toastRegion() {
  let region = $('#toasts');
  if (!region) {
    region = h('div', { id: 'toasts', class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(region);
  }
  return region;
}

/** A short message at the bottom corner; kind: 'info' | 'ok' | 'error'. */
export function toast(message, kind = 'info', ms = 4000) {
  const node = h('div', { class: `toast toast-${kind}` }, message);
  toastRegion().append(node);
  setTimeout(() => node.remove(), kind === 'error' ? Math.max(ms, 7000) : ms);
}

/** The live-connection notice: shown while the event stream is being re-established. */
export function showConnectionState(state) {
  let bar = $('#live-notice');
  if (!bar) {
    bar = h('div', { id: 'live-notice', class: 'live-notice', role: 'status', 'aria-live': 'polite', hidden: true });
    document.body.append(bar);
  }
  const dot = $('#live-dot');
  if (dot) {
    dot.dataset.state = state;
    dot.setAttribute('title', t(`live.${state}`));
    dot.setAttribute('aria-label', t(`live.${state}`));
  }
  if (state === 'reconnecting') {
    clear(bar).append(icon('refresh', 'icon spin'), h('span', { text: t('live.reconnecting_notice') }));
    bar.hidden = false;
  } else if (state === 'live' && !bar.hidden) {
    clear(bar).append(h('span', { text: t('live.restored') }));
    setTimeout(() => { bar.hidden = true; }, 2500);
  }
}

// ---- dialogs ------------------------------------------------------------------------

/** A modal yes/no question; resolves true on confirm. */
export function confirmDialog(message, { confirm = t('action.confirm'), danger = false } = {}) {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'dialog', 'aria-label': message },
      h('form', { method: 'dialog', class: 'dialog-body' },
        h('p', { text: message }),
        h('div', { class: 'dialog-actions' },
          h('button', { type: 'submit', value: 'cancel', class: 'btn', text: t('action.cancel') }),
          h('button', { type: 'submit', value: 'ok', class: danger ? 'btn btn-danger' : 'btn btn-primary', text: confirm }))));
    dialog.addEventListener('close', () => { dialog.remove(); resolve(dialog.returnValue === 'ok'); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// ---- form errors --------------------------------------------------------------------

export function clearFormErrors(form) {
  for (const el of form.querySelectorAll('.field-error, .form-error')) el.remove();
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

/** Shows an API error next to the field it names (else at the top of the form) and
 * focuses that field. */
export function showFormError(form, error) {
  clearFormErrors(form);
  const message = error.detail || error.message || String(error);
  const field = error.field ? form.querySelector(`[name="${CSS.escape(error.field)}"]`) : null;
  if (field) {
    field.setAttribute('aria-invalid', 'true');
    const id = `err-${error.field}`;
    field.setAttribute('aria-describedby', id);
    const note = h('p', { class: 'field-error', id, role: 'alert', text: message });
    (field.closest('.field') || field.parentElement).append(note);
    field.focus();
  } else {
    form.prepend(h('p', { class: 'form-error', role: 'alert', text: message }));
  }
}
