// Light and dark themes. The choice is stored ('light' | 'dark'); with none stored the
// page follows the system and changes with it. <html data-theme> is what CSS reads.
const KEY = 'apimon.theme';
const media = window.matchMedia('(prefers-color-scheme: dark)');

function stored() {
  try { return localStorage.getItem(KEY); } catch { return null; }
}

export function theme() {
  return document.documentElement.dataset.theme === 'dark' ? 'dark' : 'light';
}

function apply(name) {
  document.documentElement.dataset.theme = name;
  document.dispatchEvent(new CustomEvent('themechange', { detail: name }));
}

/** Sets and stores a theme; `null` goes back to following the system. */
export function setTheme(name) {
  try {
    if (name) localStorage.setItem(KEY, name); else localStorage.removeItem(KEY);
  } catch { /* storage off: the choice lasts for this page only */ }
  apply(name || (media.matches ? 'dark' : 'light'));
}

export function toggleTheme() {
  setTheme(theme() === 'dark' ? 'light' : 'dark');
}

media.addEventListener('change', () => {
  if (!stored()) apply(media.matches ? 'dark' : 'light');
});
