// The frame of a page with no script of its own yet: header switches and translation.
import { addCatalogue } from './i18n.js';
import { initPage } from './page.js';

addCatalogue({
  en: { 'viewer.title': 'Log viewer', 'analysis.title': 'Analysis', 'docs.title': 'Proxy docs', 'shell.coming': 'This page is being built.' },
  'zh-CN': { 'viewer.title': '日志查看', 'analysis.title': '分析', 'docs.title': '代理文档', 'shell.coming': '此页面正在建设中。' },
});
initPage();
