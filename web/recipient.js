// recipient: one person's opens and clicks across every campaign, and the erase action.
// SPDX-License-Identifier: MIT

import { api, ApiError, enc } from './api.js';
import { h, clear, count, confirmDialog, zone } from './dom.js';
import { logItem, rules } from './eventlog.js';

const PAGE = 200;

export function renderRecipient(root, addr) {
  let gone = false;
  let ruleMap = new Map();
  rules().then((m) => {
    ruleMap = m;
  });
  const erase = h('button', { type: 'button', class: 'danger', id: 'erase-recipient' }, 'Erase this recipient…');
  const notice = h('p', { class: 'status', id: 'recipient-status', role: 'status' });
  const log = h('ol', { class: 'log', id: 'timeline', 'aria-label': 'Opens and clicks, newest first' });
  const more = h('button', { type: 'button', class: 'secondary', id: 'timeline-more', hidden: true }, 'Show older');
  const status = h('p', { class: 'muted', role: 'status', id: 'timeline-status' }, 'Loading…');
  root.append(
    h('div', { class: 'page-head' },
      h('div', {}, h('h1', {}, h('span', { class: 'muted kicker' }, 'Recipient '), h('span', { class: 'addr-full' }, addr))),
      h('div', { class: 'head-tools' }, erase)),
    notice,
    h('section', { class: 'card', 'aria-labelledby': 'timeline-title' },
      h('h2', { id: 'timeline-title' }, 'Timeline'),
      h('p', { class: 'muted small' }, `Every open and click of this address in every campaign, newest first; times in ${zone()}.`),
      status, log, more));

  let before = null;
  const seen = new Set();
  async function load(older) {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (older && before !== null) q.set('before', String(before));
    const data = await api(`/recipients/${enc(addr)}?${q}`);
    if (gone) return;
    const events = Array.isArray(data) ? data : (data && Array.isArray(data.events) ? data.events : []);
    for (const e of events) {
      if (seen.has(e.id)) continue;
      seen.add(e.id);
      log.append(logItem(e, () => ruleMap, false, { campaign: true }));
    }
    if (events.length) before = events[events.length - 1].id;
    const next = data && !Array.isArray(data) && 'next_before' in data ? data.next_before : undefined;
    if (next !== undefined) before = next;
    more.hidden = next !== undefined ? next === null : events.length < PAGE;
    status.textContent = seen.size ? `${count(seen.size)} shown.` : 'Nothing recorded for this address.';
  }
  more.addEventListener('click', async () => {
    more.disabled = true;
    try {
      await load(true);
    } catch (err) {
      status.textContent = `Could not load older ones: ${err.message}`;
    }
    more.disabled = false;
  });
  load(false).catch((err) => {
    if (gone) return;
    status.textContent = err instanceof ApiError && err.status === 404 ? 'Nothing recorded for this address.' : `Could not load the timeline: ${err.message}`;
  });

  erase.addEventListener('click', async () => {
    const yes = await confirmDialog({
      title: `Erase ${addr}?`,
      text: 'This deletes every open and click of this address in every campaign (for a request to be forgotten). It cannot be undone.',
      confirm: 'Erase everything',
    });
    if (!yes) {
      erase.focus();
      return;
    }
    erase.disabled = true;
    notice.dataset.state = '';
    notice.textContent = 'Erasing…';
    try {
      const r = await api(`/recipients/${enc(addr)}`, { method: 'DELETE' });
      const n = Number(r && r.deleted_events) || 0;
      notice.dataset.state = 'good';
      notice.textContent = `Erased: ${count(n)} ${n === 1 ? 'event' : 'events'} deleted.`;
      clear(log);
      seen.clear();
      more.hidden = true;
      status.textContent = 'Nothing recorded for this address.';
    } catch (err) {
      notice.dataset.state = 'bad';
      notice.textContent = `Could not erase: ${err.message}`;
      erase.disabled = false;
    }
  });

  return () => {
    gone = true;
  };
}
