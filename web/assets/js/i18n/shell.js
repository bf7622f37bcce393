// Strings of the page frame that shell.js serves (pages with no script of their own).
export default {
  en: { 'viewer.title': 'Log viewer', 'analysis.title': 'Analysis', 'docs.title': 'Proxy docs', 'shell.coming': 'This page is being built.' },
  'zh-CN': { 'viewer.title': '日志查看', 'analysis.title': '分析', 'docs.title': '代理文档', 'shell.coming': '此页面正在建设中。' },
};
