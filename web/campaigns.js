// campaigns: one card per campaign with its totals, newest activity first, kept live.
// SPDX-License-Identifier: MIT

import { api } from './api.js';
import { h, clear, when, ago, count, campaignHref } from './dom.js';
import { subscribe } from './live.js';

function activity(c) {
  const t = Date.parse(c.last_view_at || '') || 0;
  return t || Date.parse(c.created_at || '') || 0;
}

/** Newest activity first; campaigns never opened go by creation, after the opened ones. */
export function sortCampaigns(list) {
  return [...list].sort((a, b) => {
    const la = Date.parse(a.last_view_at || '') || 0;
    const lb = Date.parse(b.last_view_at || '') || 0;
    if (!la !== !lb) return la ? -1 : 1;
    return activity(b) - activity(a) || String(a.id).localeCompare(String(b.id));
  });
}

function stat(label, value, cls) {
  return h('div', { class: `stat ${cls || ''}` }, h('dt', {}, label), h('dd', {}, value));
}

function card(c, fresh) {
  const bc = c.by_class || {};
  const extra = [];
  if (bc.proxy) extra.push(`${count(bc.proxy)} via proxy`);
  if (bc.machine) extra.push(`${count(bc.machine)} machine`);
  if (bc.self) extra.push(`${count(bc.self)} self`);
  if (c.clicks) extra.push(`${count(c.clicks)} ${c.clicks === 1 ? 'click' : 'clicks'}`);
  return h('li', { class: `card campaign-card${fresh ? ' fresh' : ''}`, dataset: { campaign: c.id } },
    h('h2', {}, h('a', { href: campaignHref(c.id) }, c.id)),
    h('dl', { class: 'stats' },
      stat('Total views', count(c.total_views), 'total'),
      stat('Unique views', count(c.unique_views), 'unique')),
    h('p', { class: 'last-open' }, 'Last open: ', when(c.last_view_at),
      c.last_view_at ? h('span', { class: 'muted' }, ` (${ago(c.last_view_at)})`) : null),
    extra.length ? h('p', { class: 'muted small', title: 'Shown apart: machine and self opens are not in the totals' }, extra.join(' · ')) : null);
}

export function renderCampaigns(root) {
  const list = h('ul', { class: 'cards', id: 'campaign-cards', 'aria-label': 'Campaigns' });
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading campaigns…');
  const announce = h('p', { class: 'visually-hidden', 'aria-live': 'polite', id: 'live-announce' });
  const fresh = new Set(); // campaigns with news since the last render
  let timer = null;
  let gone = false;
  const scheduleLoad = () => {
    clearTimeout(timer);
    timer = setTimeout(load, 250);
  };
  const live = subscribe('/api/v1/stream', {
    onEvent: (ev) => {
      fresh.add(ev.campaign);
      announce.textContent = `New ${ev.kind === 'click' ? 'click' : 'open'} in campaign ${ev.campaign || ''}`;
      scheduleLoad();
    },
    onResync: () => scheduleLoad(),
  });
  root.append(
    h('div', { class: 'page-head' },
      h('h1', {}, 'Campaigns'),
      h('div', { class: 'head-tools' }, live.el, h('a', { class: 'button', href: '#/create' }, 'Create a pixel'))),
    status, list, announce);

  async function load() {
    let data;
    try {
      data = await api('/campaigns');
    } catch (err) {
      if (!gone) status.textContent = `Could not load the campaigns: ${err.message}`;
      return;
    }
    if (gone) return;
    const sorted = sortCampaigns(Array.isArray(data) ? data : []);
    clear(list);
    if (!sorted.length) {
      status.textContent = '';
      status.append('No campaigns yet. ', h('a', { href: '#/create' }, 'Create a pixel'), ' to start one.');
      return;
    }
    status.textContent = `${sorted.length} ${sorted.length === 1 ? 'campaign' : 'campaigns'}, newest activity first.`;
    for (const c of sorted) list.append(card(c, fresh.has(c.id)));
    fresh.clear();
  }
  load();

  return () => {
    gone = true;
    clearTimeout(timer);
    live.close();
  };
}
