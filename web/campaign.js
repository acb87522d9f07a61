// campaign: one campaign's totals, recipients, chart, breakdowns and the live log of opens.
// SPDX-License-Identifier: MIT

import { api, ApiError, enc } from './api.js';
import { h, append, clear, when, ago, count, countryName, joined } from './dom.js';
import { subscribe } from './live.js';
import { timeChart, tally, barList } from './chart.js';
import { engagementPanel } from './engagement.js';

const PAGE = 500; // events fetched per request
const SHOW = 100; // log rows shown per step
const RECIPIENTS = 100;

const CLASS_TEXT = {
  human: 'human',
  proxy: 'proxy',
  machine: 'machine',
  self: 'self',
};
const CLASS_HELP = {
  human: 'A person’s mail client fetched it. Counted.',
  proxy: 'A person’s open, relayed by a mail provider’s image proxy. Counted; IP, place and client are the proxy’s.',
  machine: 'Fetched with no person reading (a privacy prefetch, a scanner, a link check). Not counted.',
  self: 'Your own view. Not counted.',
};
const GEO_TEXT = {
  private: 'a private network address: no location',
  loopback: 'a loopback address (this machine): no location',
  reserved: 'a reserved address: no location',
  unknown: 'not in the location database',
};

let rulesCache = null;
function rules() {
  if (!rulesCache) {
    rulesCache = api('/rules').then((list) => {
      const m = new Map();
      for (const r of Array.isArray(list) ? list : []) m.set(r.name, r);
      return m;
    }).catch(() => {
      rulesCache = null;
      return new Map();
    });
  }
  return rulesCache;
}

function badge(cls) {
  const c = CLASS_TEXT[cls] ? cls : 'unknown';
  return h('span', { class: `badge ${c}`, title: CLASS_HELP[c] || '' }, CLASS_TEXT[c] || String(cls || '?'));
}

function tile(label, value, note, id) {
  return h('div', { class: 'tile', id }, h('dt', {}, label), h('dd', {}, value), note ? h('dd', { class: 'muted small' }, note) : null);
}

function clientText(e) {
  return joined([joined([e.browser, e.browser_version]), e.os && `on ${joined([e.os, e.os_version])}`]);
}

function placeText(e) {
  if (e.city || e.country) return joined([e.city, countryName(e.country)], ', ');
  return e.geo_label ? e.geo_label : '';
}

function recipientText(r) {
  return r ? r : h('span', { class: 'muted' }, '(no recipient)');
}

// ---- One open in the log -----------------------------------------------------------------

function row(label, value, note, noteClass = 'proxy-note') {
  if (value === null || value === undefined || value === '') value = h('span', { class: 'muted' }, '—');
  return h('div', { class: 'kv' }, h('dt', {}, label), h('dd', {}, value, note ? h('span', { class: noteClass }, note) : null));
}

function table(caption, obj, cls) {
  const entries = obj && typeof obj === 'object' ? Object.entries(obj) : [];
  if (!entries.length) return h('div', { class: `kv-table ${cls}` }, h('h4', {}, caption), h('p', { class: 'muted' }, 'None.'));
  return h('div', { class: `kv-table ${cls}` }, h('h4', {}, caption),
    h('div', { class: 'table-wrap' },
      h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Value'))),
        h('tbody', {}, entries.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k),
          h('td', {}, typeof v === 'string' ? v : JSON.stringify(v))))))));
}

function eventDetail(e, ruleMap) {
  const proxy = e.class === 'proxy';
  const machine = e.class === 'machine';
  const via = e.via || (proxy ? 'a mail image proxy' : '');
  const proxyIp = proxy ? `The IP is ${via}’s, not the reader’s.` : null;
  const proxyPlace = proxy ? `The place is ${via}’s, not the reader’s.` : null;
  const proxyClient = proxy ? `This is ${via}, not the reader’s mail client.` : null;
  const geo = e.geo_label && GEO_TEXT[e.geo_label] ? `(${GEO_TEXT[e.geo_label]})` : e.geo_label ? `(${e.geo_label})` : null;
  const rule = ruleMap.get(e.rule);
  const coords = typeof e.latitude === 'number' && typeof e.longitude === 'number' && (e.latitude || e.longitude)
    ? `${e.latitude.toFixed(4)}, ${e.longitude.toFixed(4)}` : '';

  const classNote = h('p', { class: `class-note ${e.class}` }, badge(e.class), ' ',
    proxy ? `Relayed by ${via}: counted as an open, but the IP, the place and the client below describe the proxy, not the reader.`
      : machine ? `Not counted: a machine fetch${e.via ? ` (${e.via})` : ''}, decided by the rule “${e.rule || '?'}”.`
        : e.class === 'self' ? `Not counted: your own view, decided by the rule “${e.rule || '?'}”.`
          : 'A person’s mail client fetched it. Counted.');

  return h('div', { class: 'event-body' },
    classNote,
    h('div', { class: 'detail-grid' },
      h('section', {}, h('h4', {}, 'Client'),
        h('dl', {},
          row('Browser', joined([e.browser, e.browser_version]), proxyClient),
          row('Device', joined([e.device, joined([e.device_brand, e.device_model])], ' · ')),
          row('OS', joined([e.os, e.os_version])),
          row('Architecture', e.arch),
          row('User-Agent', e.user_agent ? h('code', { class: 'ua' }, e.user_agent) : ''))),
      h('section', {}, h('h4', {}, 'Network and place'),
        h('dl', {},
          row('IP', e.ip, proxyIp || geo, proxyIp ? 'proxy-note' : 'note'),
          row('Country', countryName(e.country), proxyPlace),
          row('Region', e.region),
          row('City', e.city, proxyPlace),
          row('Coordinates', coords),
          row('Via', e.via))),
      h('section', {}, h('h4', {}, 'Request'),
        h('dl', {},
          row('Time', when(e.ts)),
          row('Kind', e.kind),
          e.engagement ? row('Engagement', e.read_ms === null ? e.engagement : `${e.engagement} (${(e.read_ms / 1000).toFixed(1)} s)`) : null,
          row('Recipient', e.recipient),
          row('Class', e.class),
          row('Rule', e.rule ? h('a', { href: `#/rules?rule=${enc(e.rule)}` }, e.rule) : '', rule && rule.reason ? rule.reason : null, 'note'),
          row('Referer', e.referer),
          e.kind === 'click' ? row('Target', e.target) : null,
          row('Event ID', String(e.id))))),
    table('Cookies', e.cookies, 'cookies'),
    table('Raw headers', e.headers, 'headers'));
}

function logItem(e, ruleMap, fresh) {
  const summary = h('summary', {},
    h('span', { class: 'ev-time' }, when(e.ts)),
    ' ', badge(e.class),
    e.kind !== 'open' ? [' ', h('span', { class: `badge ${e.kind}` }, e.kind)] : null,
    ' ', h('span', { class: 'ev-recipient' }, recipientText(e.recipient)),
    ' ', h('span', { class: 'ev-client muted' }, (e.class === 'proxy' || e.class === 'machine') && e.via ? `via ${e.via}` : clientText(e) || e.via || ''),
    ' ', h('span', { class: 'ev-place muted' }, placeText(e)));
  const details = h('details', { class: 'event' }, summary);
  let built = false;
  details.addEventListener('toggle', () => {
    if (details.open && !built) {
      built = true;
      details.append(eventDetail(e, ruleMap()));
    }
  });
  return h('li', { class: fresh ? 'fresh' : '', dataset: { eventId: String(e.id) } }, details);
}

// ---- The page ----------------------------------------------------------------------------

export function renderCampaign(root, id) {
  let gone = false;
  let events = []; // newest first
  const seen = new Set();
  let moreOnServer = false;
  let shown = SHOW;
  let ruleMap = new Map();
  rules().then((m) => {
    ruleMap = m;
  });

  const head = h('div', { class: 'page-head' });
  const tiles = h('dl', { class: 'tiles', id: 'tiles', 'aria-label': 'Totals' });
  const chartBox = h('div', { id: 'chart' });
  const engagementBox = h('div', { id: 'engagement-box' });
  const breakdowns = h('div', { class: 'breakdowns', id: 'breakdowns' });
  const basis = h('p', { class: 'muted small', id: 'basis' });
  const recBody = h('tbody');
  const recMore = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Show more recipients');
  const log = h('ol', { class: 'log', id: 'log', 'aria-label': 'Opens, newest first' });
  const logMore = h('button', { type: 'button', class: 'secondary', hidden: true, id: 'log-more' }, 'Show older opens');
  const logStatus = h('p', { class: 'muted', id: 'log-status' });
  const announce = h('p', { class: 'visually-hidden', 'aria-live': 'polite', id: 'live-announce' });
  let recAfter = null;

  const live = subscribe(`/api/v1/campaigns/${enc(id)}/stream`, {
    onEvent: (ev) => {
      if (ev.campaign && ev.campaign !== id) return;
      if (ev.kind === 'read') { // a read time folded into an open already shown
        scheduleSummary();
        return;
      }
      if (!addEvents([ev], true)) return;
      announce.textContent = `New ${ev.kind === 'click' ? 'click' : 'open'}: ${ev.recipient || 'no recipient'}, ${ev.class}`;
      scheduleSummary();
    },
    onResync: () => catchUp(),
  });

  const created = h('p', { class: 'muted small created', id: 'created' });
  head.append(h('div', {}, h('h1', {}, h('span', { class: 'muted kicker' }, 'Campaign '), id), created),
    h('div', { class: 'head-tools' }, live.el,
      h('a', { class: 'button secondary', href: `/api/v1/campaigns/${enc(id)}/events.csv`, download: `${id}-events.csv`, id: 'export-csv' }, 'Export CSV'),
      h('a', { class: 'button secondary', href: `/api/v1/campaigns/${enc(id)}/events.json`, download: `${id}-events.json`, id: 'export-json' }, 'Export JSON'),
      h('a', { class: 'button', href: `#/create?campaign=${enc(id)}` }, 'New pixel')));

  const recTable = h('div', { class: 'table-wrap' }, h('table', { class: 'recipients', id: 'recipients' },
    h('caption', { class: 'visually-hidden' }, 'Views per recipient'),
    h('thead', {}, h('tr', {},
      ['Recipient', 'Views', 'Machine', 'Self', 'Clicks', 'First open', 'Last open'].map((t) => h('th', { scope: 'col' }, t)))),
    recBody));

  const body = h('div', { class: 'campaign', hidden: true },
    tiles, engagementBox,
    h('section', { class: 'card', 'aria-labelledby': 'chart-title' }, h('h2', { id: 'chart-title' }, 'Opens over time'), chartBox),
    breakdowns, basis,
    h('section', { class: 'card', 'aria-labelledby': 'rec-title' }, h('h2', { id: 'rec-title' }, 'Views per recipient'),
      h('p', { class: 'muted small' }, 'Views count human and proxy opens; machine and self opens are apart.'),
      recTable, recMore),
    h('section', { class: 'card', 'aria-labelledby': 'log-title' },
      h('h2', { id: 'log-title' }, 'Opens and clicks'),
      h('p', { class: 'muted small' }, 'Newest first; new ones appear here as they happen. Open one to see everything it told.'),
      logStatus, log, logMore));
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading…');
  root.append(head, status, body, announce);

  // ---- Summary: tiles and recipients ----

  function renderTiles(c) {
    const bc = c.by_class || {};
    clear(tiles).append(
      tile('Total views', count(c.total_views), 'human and proxy opens', 'tile-total'),
      tile('Unique views', count(c.unique_views), 'recipients, or distinct clients', 'tile-unique'),
      tile('Via proxy', count(bc.proxy), 'in the totals', 'tile-proxy'),
      tile('Machine opens', count(bc.machine), 'not counted', 'tile-machine'),
      tile('Self views', count(bc.self), 'not counted', 'tile-self'),
      tile('Clicks', count(c.clicks), null, 'tile-clicks'),
      tile('Last open', when(c.last_view_at), c.last_view_at ? ago(c.last_view_at) : null, 'tile-last'));
    append(clear(created), c.created_at ? ['Created ', when(c.created_at)] : null);
  }

  function recRows(list) {
    for (const r of list) {
      recBody.append(h('tr', {},
        h('th', { scope: 'row' }, recipientText(r.recipient)),
        h('td', { class: 'num' }, count(r.views)),
        h('td', { class: 'num' }, count(r.machine)),
        h('td', { class: 'num' }, count(r.self)),
        h('td', { class: 'num' }, count(r.clicks)),
        h('td', {}, when(r.first_view_at, { short: true, empty: '—' })),
        h('td', {}, when(r.last_view_at, { short: true, empty: '—' }))));
    }
  }

  async function loadSummary() {
    const c = await api(`/campaigns/${enc(id)}?limit=${RECIPIENTS}`);
    if (gone) return;
    renderTiles(c);
    append(clear(engagementBox), engagementPanel(c.engagement));
    clear(recBody);
    const list = Array.isArray(c.per_recipient) ? c.per_recipient : [];
    if (!list.length) recBody.append(h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No views yet.')));
    recRows(list);
    recAfter = c.next_after ?? null;
    recMore.hidden = recAfter === null;
  }

  recMore.addEventListener('click', async () => {
    recMore.disabled = true;
    try {
      const c = await api(`/campaigns/${enc(id)}?limit=${RECIPIENTS}&after=${enc(recAfter)}`);
      recRows(c.per_recipient || []);
      recAfter = c.next_after ?? null;
      recMore.hidden = recAfter === null;
    } catch (err) {
      recMore.textContent = `Could not load more: ${err.message}`;
    }
    recMore.disabled = false;
  });

  let summaryTimer = null;
  const scheduleSummary = () => {
    clearTimeout(summaryTimer);
    summaryTimer = setTimeout(() => loadSummary().catch(() => {}), 300);
  };

  // ---- Events: chart, breakdowns, log ----

  function renderChart() {
    clear(chartBox).append(timeChart(events, chartBox.clientWidth));
  }
  let chartWidth = 0;
  const resize = new ResizeObserver(() => {
    if (chartBox.clientWidth && Math.abs(chartBox.clientWidth - chartWidth) > 8) {
      chartWidth = chartBox.clientWidth;
      renderChart();
    }
  });
  resize.observe(chartBox);

  function renderStats() {
    renderChart();
    const counted = events.filter((e) => e.kind === 'open' && (e.class === 'human' || e.class === 'proxy'));
    clear(breakdowns).append(
      barList('Clients', tally(counted, (e) => (e.class === 'proxy' && e.via ? e.via : e.browser)), 'by-client'),
      barList('Operating systems', tally(counted, (e) => e.os), 'by-os'),
      barList('Countries', tally(counted, (e) => countryName(e.country) || (e.geo_label ? `(${e.geo_label})` : '')), 'by-country'));
    basis.textContent = `Chart and breakdowns from ${moreOnServer ? `the latest ${count(events.length)} events` : `all ${count(events.length)} events`}; breakdowns count human and proxy opens only.`;
  }

  function renderLog() {
    clear(log);
    const rm = () => ruleMap;
    for (const e of events.slice(0, shown)) log.append(logItem(e, rm, false));
    logStatus.textContent = events.length ? '' : 'No opens yet. Put the pixel in an email and they will show up here.';
    logMore.hidden = !(events.length > shown || moreOnServer);
  }

  /** Adds events not seen yet; LIVE ones go on top of the log at once. Returns how many. */
  function addEvents(list, isLive) {
    const added = [];
    for (const e of list) {
      if (!e || e.id === undefined || seen.has(e.id)) continue;
      seen.add(e.id);
      added.push(e);
    }
    if (!added.length) return 0;
    events = [...added, ...events].sort((a, b) => (b.id > a.id ? 1 : b.id < a.id ? -1 : 0));
    if (isLive) {
      logStatus.textContent = '';
      const rm = () => ruleMap;
      for (const e of [...added].sort((a, b) => (a.id > b.id ? 1 : -1))) log.prepend(logItem(e, rm, true));
      shown += added.length;
      renderStats();
    }
    return added.length;
  }

  async function loadEvents(before) {
    const q = `limit=${PAGE}${before !== undefined ? `&before=${enc(before)}` : ''}`;
    const data = await api(`/campaigns/${enc(id)}/events?${q}`);
    const list = Array.isArray(data) ? data : (data && Array.isArray(data.events) ? data.events : []);
    return list;
  }

  async function catchUp() {
    try {
      const list = await loadEvents();
      if (gone) return;
      if (addEvents(list, false)) {
        renderLog();
        renderStats();
      }
      await loadSummary();
    } catch {
      // The next reconnect tries again.
    }
  }

  logMore.addEventListener('click', async () => {
    if (events.length > shown) {
      shown += SHOW;
      renderLog();
      return;
    }
    logMore.disabled = true;
    try {
      const oldest = events.reduce((m, e) => (m === null || e.id < m ? e.id : m), null);
      const list = await loadEvents(oldest === null ? undefined : oldest);
      moreOnServer = list.length >= PAGE;
      for (const e of list) if (!seen.has(e.id)) {
        seen.add(e.id);
        events.push(e);
      }
      shown += SHOW;
      renderLog();
      renderStats();
    } catch (err) {
      logStatus.textContent = `Could not load older opens: ${err.message}`;
    }
    logMore.disabled = false;
  });

  (async () => {
    try {
      const [, list] = await Promise.all([loadSummary(), loadEvents()]);
      if (gone) return;
      moreOnServer = list.length >= PAGE;
      for (const e of list) if (!seen.has(e.id)) {
        seen.add(e.id);
        events.push(e);
      }
      renderStats();
      renderLog();
      status.remove();
      body.hidden = false;
    } catch (err) {
      if (gone) return;
      status.setAttribute('role', 'alert');
      clear(status);
      if (err instanceof ApiError && err.status === 404) {
        status.append(`There is no campaign “${id}”. `, h('a', { href: '#/campaigns' }, 'See all campaigns'), ' or ',
          h('a', { href: `#/create?campaign=${enc(id)}` }, 'create a pixel for it'), '.');
      } else {
        status.append(`Could not load the campaign: ${err.message}`);
      }
    }
  })();

  return () => {
    gone = true;
    clearTimeout(summaryTimer);
    resize.disconnect();
    live.close();
  };
}
