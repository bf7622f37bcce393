// Building DOM nodes without innerHTML (so no markup is ever built from data, and no
// inline style attribute the CSP would refuse).

/**
 * h('button', { class: 'btn', type: 'button', onclick: fn, 'data-i18n': 'x' }, 'text', child)
 * Attributes: `class`, `text` (textContent), `on<event>` handlers, `dataset` (object),
 * booleans (true sets the attribute, false/null/undefined leaves it out), anything else
 * as an attribute. Children: nodes, strings, numbers, arrays; null/false are skipped.
 */
export function h(tag, attrs, ...children) {
  const node = tag.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'text') node.textContent = String(value);
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name.startsWith('on') && typeof value === 'function') node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, '');
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

/** The inline SVG icon `name` from assets/icons.svg (a sprite; `<use>` is CSP-safe). */
export function icon(name, cls = 'icon') {
  const svg = h('svg:svg', { class: cls, 'aria-hidden': 'true', focusable: 'false' });
  const use = document.createElementNS('http://www.w3.org/2000/svg', 'use');
  use.setAttribute('href', `/assets/icons.svg#${name}`);
  svg.append(use);
  return svg;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];
