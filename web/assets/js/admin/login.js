// /admin/login: signs in with the panel password or the admin token (the API sets the
// session cookie), then goes to the admin panel. Failed logins back off: the wait the
// API asks for (Retry-After) is counted down and the button stays off meanwhile.
import { $ } from '../dom.js';
import { addCatalogue, t } from '../i18n.js';
import { api } from '../api.js';
import { initPage, showFormError, clearFormErrors } from '../page.js';
import adminStrings from '../i18n/admin.js';

addCatalogue(adminStrings);
initPage();

const form = $('#login-form');
const input = $('#password');
const button = $('#sign-in');
const wait = $('#login-wait');
let timer = null;

function countdown(seconds) {
  clearInterval(timer);
  let left = Math.ceil(seconds);
  const tick = () => {
    if (left <= 0) {
      clearInterval(timer);
      wait.hidden = true;
      button.disabled = false;
      return;
    }
    wait.hidden = false;
    wait.textContent = t('login.wait', { s: left });
    button.disabled = true;
    left -= 1;
  };
  tick();
  timer = setInterval(tick, 1000);
}

$('#reveal').addEventListener('click', (ev) => {
  const shown = input.type === 'text';
  input.type = shown ? 'password' : 'text';
  ev.currentTarget.setAttribute('aria-pressed', String(!shown));
  ev.currentTarget.setAttribute('aria-label', t(shown ? 'action.reveal' : 'action.hide'));
});

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  clearFormErrors(form);
  const password = input.value;
  if (!password) {
    showFormError(form, { field: 'password', detail: t('login.empty') });
    return;
  }
  button.disabled = true;
  try {
    await api('/api/admin/login', { method: 'POST', body: { password }, prompt: false });
    const next = new URLSearchParams(window.location.search).get('next');
    window.location.assign(next && next.startsWith('/') && !next.startsWith('//') ? next : '/admin.html');
  } catch (e) {
    button.disabled = false;
    if (e.status === 401) showFormError(form, { field: 'password', detail: t('login.wrong') });
    else if (e.status === 429) { showFormError(form, { field: 'password', detail: t('login.too_many') }); countdown(e.retryAfter || 2); }
    else showFormError(form, e);
    input.select();
  }
});

input.focus();
