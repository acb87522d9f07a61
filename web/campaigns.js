// campaigns: one card per campaign with its totals, newest activity first, kept live; and the
// opens of campaigns that do not exist, with the action that creates each and adopts them.
// SPDX-License-Identifier: MIT

import { api, enc } from './api.js';
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
  return h('li', { class: `card campaign-card${fresh ? ' fresh' : ''}${c.archived ? ' archived' : ''}`, dataset: { campaign: c.id } },
    h('h2', {}, h('a', { href: campaignHref(c.id) }, c.id), c.archived ? [' ', h('span', { class: 'badge self' }, 'archived')] : null),
    h('dl', { class: 'stats' },
      stat('Total views', count(c.total_views), 'total'),
      stat('Unique views', count(c.unique_views), 'unique')),
    h('p', { class: 'last-open' }, 'Last open: ', when(c.last_view_at),
      c.last_view_at ? h('span', { class: 'muted' }, ` (${ago(c.last_view_at)})`) : null),
    extra.length ? h('p', { class: 'muted small', title: 'Shown apart: machine and self opens are not in the totals' }, extra.join(' · ')) : null);
}

/** "12 opens for campaigns that do not exist", over every unknown campaign ID. */
export function unknownSummary(list) {
  const n = list.reduce((sum, u) => sum + (Number(u.opens) || 0), 0);
  return n === 1 ? '1 open for a campaign that does not exist' : `${count(n)} opens for campaigns that do not exist`;
}

/**
 * The opens kept apart because their campaign does not exist (a typo in a sent email, a
 * campaign created in another data folder), one row per ID with its two actions. ACT(kind,
 * u) runs one. Returns {el, update(list)}; the list folds open and stays as the user left it.
 */
function unknownBox(act) {
  const title = h('h2', { id: 'unknown-title' });
  const body = h('tbody');
  const details = h('details', {},
    h('summary', {}, title),
    h('p', { class: 'help' },
      'Each ID below was opened but is not a campaign: a typo in a campaign ID inside a sent email, ',
      'or a campaign created in another data folder. Its newest opens are kept until it is created. ',
      '“Create and adopt” creates the campaign and counts them as if it had always existed.'),
    h('div', { class: 'table-wrap' },
      h('table', { class: 'unknown-list' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Campaign ID'),
          h('th', { scope: 'col', class: 'num' }, 'Opens'),
          h('th', { scope: 'col' }, 'First open'),
          h('th', { scope: 'col' }, 'Last open'),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
        body)));
  const el = h('section', { class: 'card unknown', id: 'unknown-campaigns', 'aria-labelledby': 'unknown-title', hidden: true }, details);

  // Discarding cannot be undone: a second click on the same button confirms it (any other
  // action calls it off). Kept by ID, so that a reload of the list (a live update) keeps it.
  let armed = null; // the ID whose discard waits for its confirmation
  const labels = new Map(); // ID -> its discard button's relabelling
  const relabel = () => {
    for (const [id, label] of labels) label(armed === id ? 'Really discard?' : 'Discard');
  };

  function row(u) {
    // The accessible names start with the visible text and say which ID.
    const adopt = h('button', { type: 'button', class: 'adopt', 'aria-label': `Create and adopt ${u.id}` }, 'Create and adopt');
    const discard = h('button', { type: 'button', class: 'secondary discard' });
    labels.set(u.id, (text) => {
      discard.textContent = text;
      discard.setAttribute('aria-label', `${text} ${u.id}`);
    });
    adopt.addEventListener('click', () => {
      armed = null;
      relabel();
      act('adopt', u);
    });
    discard.addEventListener('click', () => {
      const confirmed = armed === u.id;
      armed = confirmed ? null : u.id;
      relabel();
      if (confirmed) act('discard', u);
    });
    return h('tr', { dataset: { unknown: u.id } },
      h('th', { scope: 'row' }, h('code', {}, u.id)),
      h('td', { class: 'num', dataset: { label: 'Opens' } }, count(u.opens)),
      h('td', { dataset: { label: 'First open' } }, when(u.first_at, { short: true })),
      h('td', { dataset: { label: 'Last open' } }, when(u.last_at, { short: true })),
      h('td', { class: 'row-actions' }, adopt, ' ', discard));
  }

  let shown = null; // the list as last rendered: an unchanged one is left alone (and its focus)
  return {
    el,
    update(list) {
      const key = JSON.stringify(list);
      if (key === shown) return;
      shown = key;
      el.hidden = !list.length;
      title.textContent = list.length ? unknownSummary(list) : '';
      clear(body);
      labels.clear();
      for (const u of list) body.append(row(u));
      relabel();
    },
    busy(on) {
      for (const b of el.querySelectorAll('button')) b.disabled = on;
    },
  };
}

export function renderCampaigns(root, query = new URLSearchParams()) {
  const list = h('ul', { class: 'cards', id: 'campaign-cards', 'aria-label': 'Campaigns' });
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading campaigns…');
  const announce = h('p', { class: 'visually-hidden', 'aria-live': 'polite', id: 'live-announce' });
  const notice = h('p', { class: 'status', id: 'unknown-status', role: 'status' });
  const deleted = query.get('deleted');
  if (deleted) {
    notice.dataset.state = 'good';
    const n = Number(query.get('events')) || 0;
    notice.textContent = `Deleted campaign ${deleted} and its ${count(n)} ${n === 1 ? 'event' : 'events'}.`;
  }
  const showArchived = h('input', { type: 'checkbox', id: 'show-archived' });
  const archivedToggle = h('p', { class: 'archived-toggle', hidden: true },
    showArchived, ' ', h('label', { for: 'show-archived', id: 'show-archived-label' }, 'Show archived campaigns'));
  showArchived.addEventListener('change', () => load());
  const unknown = unknownBox(act);
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
      h('div', { class: 'head-tools' }, live.el,
        h('a', { class: 'button secondary', href: '#/compare' }, 'Compare two'),
        h('a', { class: 'button', href: '#/create' }, 'Create a pixel'))),
    notice, unknown.el, status, archivedToggle, list, announce);

  async function act(kind, u) {
    unknown.busy(true);
    notice.dataset.state = '';
    notice.textContent = kind === 'adopt' ? `Creating campaign ${u.id}…` : `Discarding the opens of ${u.id}…`;
    try {
      if (kind === 'adopt') {
        const r = await api(`/unknown-campaigns/${enc(u.id)}/adopt`, { method: 'POST' });
        const n = Number(r && r.adopted) || 0;
        notice.textContent = `${r && r.created ? 'Created' : 'Adopted into'} campaign ${u.id}: ${count(n)} ${n === 1 ? 'open' : 'opens'} adopted.`;
        if (n < u.opens) notice.textContent += ` ${count(u.opens - n)} older ${u.opens - n === 1 ? 'open was' : 'opens were'} beyond the limit kept per ID and only counted.`;
        fresh.add(u.id);
      } else {
        await api(`/unknown-campaigns/${enc(u.id)}`, { method: 'DELETE' });
        notice.textContent = `Discarded the opens of ${u.id}.`;
      }
      notice.dataset.state = 'good';
    } catch (err) {
      notice.dataset.state = 'bad';
      notice.textContent = `Could not ${kind === 'adopt' ? 'create' : 'discard'} ${u.id}: ${err.message}`;
    }
    if (!gone) await load();
    unknown.busy(false);
  }

  async function load() {
    let data;
    let kept;
    try {
      [data, kept] = await Promise.all([api('/campaigns'), api('/unknown-campaigns').catch(() => [])]);
    } catch (err) {
      if (!gone) status.textContent = `Could not load the campaigns: ${err.message}`;
      return;
    }
    if (gone) return;
    unknown.update(Array.isArray(kept) ? kept : []);
    const all = Array.isArray(data) ? data : [];
    const archived = all.filter((c) => c.archived).length;
    archivedToggle.hidden = archived === 0;
    clear(archivedToggle.querySelector('label')).append(`Show ${count(archived)} archived ${archived === 1 ? 'campaign' : 'campaigns'}`);
    const sorted = sortCampaigns(showArchived.checked ? all : all.filter((c) => !c.archived));
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
