// The frame of a page with no script of its own yet: header switches and translation.
import { addCatalogue } from './i18n.js';
import { initPage } from './page.js';
import shellStrings from './i18n/shell.js';

addCatalogue(shellStrings);
initPage();
