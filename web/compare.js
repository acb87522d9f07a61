// compare: two campaigns' reports side by side, over the same range and time zone.
// SPDX-License-Identifier: MIT

import { api } from './api.js';
import { h, clear, count, percent, campaignHref, zone } from './dom.js';
import { rangeControls, rangeFromQuery, rangeText, fetchReport, chart } from './report.js';
import { breakdownName } from './names.js';

const ROWS = [
  ['Total views', (r) => count(r.total_views)],
  ['Unique views', (r) => count(r.unique_views)],
  ['Via proxy', (r) => count(r.by_class && r.by_class.proxy)],
  ['Machine opens', (r) => count(r.by_class && r.by_class.machine)],
  ['Self views', (r) => count(r.by_class && r.by_class.self)],
  ['Clicks', (r) => count(r.clicks)],
  ['Unique clickers', (r) => count(r.unique_clickers)],
  ['Sent', (r) => (typeof r.sent === 'number' && r.sent > 0 ? count(r.sent) : 'no list')],
  ['Open rate', (r) => percent(r.open_rate)],
  ['Click rate', (r) => percent(r.click_rate)],
  ['Click-to-open', (r) => percent(r.click_to_open_rate)],
  ['Top client', (r) => top(r, 'client')],
  ['Top country', (r) => top(r, 'country')],
];

function top(r, dim) {
  const list = r.breakdowns && Array.isArray(r.breakdowns[dim]) ? r.breakdowns[dim] : [];
  return list.length ? `${breakdownName(dim, list[0].name) || 'Unknown'} (${count(list[0].count)})` : '—';
}

export function renderCompare(root, query) {
  let gone = false;
  const pick = (key, label, value) => {
    const sel = h('select', { id: `compare-${key}`, name: key }, h('option', { value: '' }, 'Choose a campaign'));
    if (value) sel.append(h('option', { value, selected: true }, value));
    return { sel, el: h('div', { class: 'field inline' }, h('label', { for: `compare-${key}` }, label), sel) };
  };
  const a = pick('a', 'First campaign', query.get('a') || '');
  const b = pick('b', 'Second campaign', query.get('b') || '');
  const out = h('div', { id: 'compare-body' });
  const status = h('p', { class: 'muted', role: 'status', id: 'compare-status' });
  const range = rangeControls(rangeFromQuery(query), {
    onChange: () => load(),
    onZone: () => window.dispatchEvent(new HashChangeEvent('hashchange')),
    bucketChoice: false,
  });
  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Compare two campaigns')),
    h('section', { class: 'card compare-pick', 'aria-label': 'Campaigns to compare' }, a.el, b.el),
    range.el, status, out);

  api('/campaigns').then((list) => {
    for (const s of [a.sel, b.sel]) {
      const chosen = s.value;
      for (const c of Array.isArray(list) ? list : []) if (c.id !== chosen) s.append(h('option', { value: c.id }, c.id));
    }
  }).catch(() => {});

  let seq = 0;
  async function load() {
    const ids = [a.sel.value, b.sel.value];
    const q = new URLSearchParams();
    if (ids[0]) q.set('a', ids[0]);
    if (ids[1]) q.set('b', ids[1]);
    history.replaceState(null, '', `#/compare?${q}`);
    clear(out);
    if (!ids[0] || !ids[1]) {
      status.textContent = 'Choose two campaigns.';
      return;
    }
    const mine = ++seq;
    status.textContent = 'Loading…';
    let reports;
    try {
      const now = Date.now();
      reports = await Promise.all(ids.map((id) => fetchReport(id, range.range(), 'auto', null, now)));
    } catch (err) {
      if (!gone && mine === seq) status.textContent = `Could not load the reports: ${err.message}`;
      return;
    }
    if (gone || mine !== seq) return;
    status.textContent = `${rangeText(range.range())}, times in ${zone()}.`;
    out.append(
      h('div', { class: 'table-wrap' }, h('table', { id: 'compare-table', class: 'compare' },
        h('caption', { class: 'visually-hidden' }, `${ids[0]} and ${ids[1]} side by side`),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Figure')),
          ids.map((id) => h('th', { scope: 'col', class: 'num' }, h('a', { href: campaignHref(id) }, id))))),
        h('tbody', {}, ROWS.map(([label, fn]) => h('tr', {}, h('th', { scope: 'row' }, label),
          reports.map((r) => h('td', { class: 'num' }, fn(r)))))))),
      h('div', { class: 'compare-charts' }, reports.map((r, i) => h('section', { class: 'card', 'aria-label': `Opens over time, ${ids[i]}` },
        h('h2', {}, ids[i]), chart(r, 460)))));
  }
  a.sel.addEventListener('change', load);
  b.sel.addEventListener('change', load);
  load();
  return () => {
    gone = true;
  };
}
