// rules: the class rule table, so that every "machine" or "proxy" verdict can be checked.
// SPDX-License-Identifier: MIT

import { api } from './api.js';
import { h } from './dom.js';

/** Sources are text; the http(s) addresses among them become links. */
function sourceCell(source) {
  const parts = String(source || '').split(/(https?:\/\/[^\s;,)]+)/);
  return parts.map((p) => (/^https?:\/\//.test(p)
    ? h('a', { href: p, rel: 'noopener noreferrer', target: '_blank' }, p)
    : p));
}

export function renderRules(root, focus = '') {
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading the rules…');
  const body = h('tbody');
  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'How opens are classed')),
    h('p', { class: 'lead' },
      'Each open and click gets one class from the first rule that matches, most specific first. ',
      'Only human and proxy opens count in the views; machine and self opens are shown apart.'),
    status,
    h('section', { class: 'card' }, h('div', { class: 'table-wrap' }, h('table', { class: 'rules', id: 'rules' },
      h('thead', {}, h('tr', {}, ['Rule', 'Class', 'Why', 'Source'].map((t) => h('th', { scope: 'col' }, t)))),
      body))));
  api('/rules').then((list) => {
    status.textContent = `${list.length} rules, in the order they are tried.`;
    for (const r of list) {
      body.append(h('tr', { id: `rule-${r.name}` },
        h('th', { scope: 'row' }, h('code', {}, r.name)),
        h('td', {}, h('span', { class: `badge ${r.class}` }, r.class)),
        h('td', {}, r.reason),
        h('td', { class: 'small' }, sourceCell(r.source))));
    }
    const row = focus && document.getElementById(`rule-${focus}`);
    if (row) {
      row.classList.add('target');
      row.scrollIntoView({ block: 'center' });
    }
  }).catch((err) => {
    status.textContent = `Could not load the rules: ${err.message}`;
  });
}
