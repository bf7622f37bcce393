// /admin.html: resources, settings, channels, proxy keys and proxy usage. The page runs on the admin session cookie; when it ends (logout elsewhere,
// a changed admin token) the API answers 401 and the browser goes back to the login.
import { $ } from '../dom.js';
import { addCatalogue } from '../i18n.js';
import { api, onUnauthorized, useStoredToken } from '../api.js';
import { initPage } from '../page.js';
import adminStrings from '../i18n/admin.js';
import dashboardStrings from '../i18n/dashboard.js';
import { initResources } from './resources.js';
import { initSettings } from './settings.js';
import { initChannels } from './channels.js';
import { initKeys } from './keys.js';
import { initUsage } from './usage.js';

addCatalogue(dashboardStrings);
addCatalogue(adminStrings);
useStoredToken(false);
initPage();
onUnauthorized(async () => {
  window.location.assign('/admin/login');
  return false;
});

$('#logout').addEventListener('click', async () => {
  await api('/api/admin/logout', { method: 'POST' }).catch(() => {});
  window.location.assign('/admin/login');
});

initResources();
initSettings();
initChannels();
initKeys();
initUsage();
