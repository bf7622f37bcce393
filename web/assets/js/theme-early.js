// Loaded as a classic script in <head> (before the first paint, so a dark page never
// flashes light): sets <html data-theme> from the stored choice, else the system's.
(function () {
  var stored = null;
  try { stored = localStorage.getItem('apimon.theme'); } catch (e) { /* storage off */ }
  var dark = stored ? stored === 'dark' : window.matchMedia('(prefers-color-scheme: dark)').matches;
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
})();
