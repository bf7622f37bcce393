// The JSON API client. The token (admin or visitor) is kept in localStorage; a page
// opened with ?token=… stores it and removes it from the address bar (as the Go pages
// took it; Referrer-Policy: no-referrer keeps it out of other sites' logs meanwhile).
// The admin session cookie is sent too, so a signed-in admin needs no token.
// A 401 asks for a token through the handler the page registers (page.js shows a
// dialog) and retries; any other error is an ApiError with the API's `detail` and the
// field it names, if any.
const TOKEN_KEY = 'apimon.token';

let sendToken = true;
/** The admin panel runs on its session cookie alone: a stored visitor token must not
 * stand in front of it (a token, when sent, decides the role). */
export function useStoredToken(on) {
  sendToken = on;
}

export function token() {
  if (!sendToken) return '';
  try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

export function setToken(value) {
  try {
    if (value) localStorage.setItem(TOKEN_KEY, value); else localStorage.removeItem(TOKEN_KEY);
  } catch { /* storage off */ }
}

(function takeTokenFromAddress() {
  const url = new URL(window.location.href);
  const given = url.searchParams.get('token');
  if (given === null) return;
  if (given) setToken(given.trim());
  url.searchParams.delete('token');
  window.history.replaceState(window.history.state, '', url.pathname + url.search + url.hash);
})();

export class ApiError extends Error {
  constructor(status, detail, retryAfter = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    /** Seconds to wait, from Retry-After (429). */
    this.retryAfter = retryAfter === null ? null : Number(retryAfter) || null;
    // The API names a bad field first: "interval_min: must be 1 to 1440".
    const m = /^([a-z_][a-z0-9_]*)(?:\[\d+\])?(?:\.[a-z0-9_]+)*:\s/.exec(detail || '');
    this.field = m ? m[1] : null;
  }
}

let askForToken = null;
/** Registers what runs on a 401: an async function (detail) → true to retry. */
export function onUnauthorized(handler) {
  askForToken = handler;
}

/**
 * api('/api/targets', { method: 'POST', body: {...}, query: {...} }) → parsed JSON.
 * Throws ApiError (status 0 when the network failed). `prompt: false` turns off the
 * token dialog on 401 (the login form handles its own).
 */
export async function api(path, { method = 'GET', body, query, signal, prompt = true } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  for (;;) {
    const headers = { Accept: 'application/json' };
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let resp;
    try {
      resp = await fetch(url, {
        method, headers, signal, credentials: 'same-origin',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, e.message || 'network error');
    }
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (resp.ok) return data;
    const detail = (data && typeof data.detail === 'string') ? data.detail : (text || resp.statusText);
    if (resp.status === 401 && askForToken && prompt) {
      if (t) setToken('');
      if (await askForToken(detail)) continue;
    }
    throw new ApiError(resp.status, detail, resp.headers.get('Retry-After'));
  }
}

/** The event stream's address; EventSource cannot send headers, so the token goes in
 * the query (the API accepts it there for this route only). */
export function eventsUrl() {
  const t = token();
  return t ? `/api/events?token=${encodeURIComponent(t)}` : '/api/events';
}
