// campaign: one campaign as a report (range, zone, totals, rates, chart, breakdowns), its links,
// its recipients sorted on the server, and its log of opens with server-side filters.
// SPDX-License-Identifier: MIT

import { api, ApiError, enc } from './api.js';
import { h, append, clear, when, ago, count, confirmDialog, zone } from './dom.js';
import { subscribe } from './live.js';
import { logItem, rules, recipientText } from './eventlog.js';
import { clientName } from './names.js';
import { engagementPanel } from './engagement.js';
import {
  rangeControls, rangeFromQuery, rangeToQuery, rangeText, rangeBounds, fetchReport, reportTiles, rateTiles, hasList,
  timeViews, breakdownCards, chart,
} from './report.js';

const PAGE = 100; // log rows per request
const RECIPIENTS = 100;

// The recipients table's columns: [key, label, first order] for those the server sorts by.
const COLUMNS = [
  ['recipient', 'Recipient', 'asc'],
  ['views', 'Views', 'desc'],
  ['machine', 'Machine', null],
  ['self', 'Self', null],
  ['clicks', 'Clicks', 'desc'],
  ['first_view_at', 'First open', 'desc'],
  ['last_view_at', 'Last open', 'desc'],
];

function download(href, name, label, id, title) {
  return h('a', { class: 'button secondary', href, download: name, id, title }, label);
}

// ---- The page ----------------------------------------------------------------------------

export function renderCampaign(root, id, query = new URLSearchParams()) {
  let gone = false;
  let ruleMap = new Map();
  rules().then((m) => {
    ruleMap = m;
  });
  const rm = () => ruleMap;
  let campaign = null; // GET /campaigns/ID
  let report = null;

  // ---- Head: the actions appear only once the campaign is known to exist.
  const created = h('p', { class: 'muted small created', id: 'created' });
  const archivedNote = h('p', { class: 'archived-note', id: 'archived-note', hidden: true }, 'Archived: kept, and left off the campaign list.');
  const archive = h('button', { type: 'button', class: 'secondary', id: 'archive' }, 'Archive');
  const del = h('button', { type: 'button', class: 'danger', id: 'delete-campaign' }, 'Delete…');
  const tools = h('div', { class: 'head-tools', id: 'campaign-tools', hidden: true });
  const notice = h('p', { class: 'status', id: 'campaign-status', role: 'status' });
  const head = h('div', { class: 'page-head' },
    h('div', {}, h('h1', {}, h('span', { class: 'muted kicker' }, 'Campaign '), id), created, archivedNote), tools);

  const range = rangeControls(rangeFromQuery(query), {
    onChange: () => {
      const q = rangeToQuery(range.range(), new URLSearchParams(location.hash.split('?')[1] || ''));
      const qs = q.toString();
      history.replaceState(null, '', `#/campaigns/${enc(id)}${qs ? `?${qs}` : ''}`);
      loadReport();
      reloadLog();
    },
    onZone: () => window.dispatchEvent(new HashChangeEvent('hashchange')),
  });

  const tiles = h('dl', { class: 'tiles', id: 'tiles', 'aria-label': 'Totals' });
  const engagementBox = h('div', { id: 'engagement-box' });
  const reportStatus = h('p', { class: 'muted small', id: 'report-status', role: 'status' });
  const ratesBox = h('div', { id: 'rates-body' });
  const chartBox = h('div', { id: 'chart' });
  const timeBox = h('div', { class: 'breakdowns', id: 'time-views' });
  const breakdowns = h('div', { class: 'breakdowns', id: 'breakdowns' });
  const linksBox = h('div', { id: 'links-body' });

  // ---- Rates: the recipient list.
  const listInput = h('input', { type: 'file', id: 'list-file', accept: '.csv,.txt,text/csv,text/plain', 'aria-describedby': 'list-help' });
  const listStatus = h('p', { class: 'status', id: 'list-status', role: 'status' });
  const ratesCard = h('section', { class: 'card', id: 'rates', 'aria-labelledby': 'rates-title' },
    h('h2', { id: 'rates-title' }, 'Rates'), ratesBox,
    h('div', { class: 'field' }, h('label', { for: 'list-file' }, 'Upload the list of recipients (CSV)'), listInput,
      h('p', { class: 'help', id: 'list-help' }, 'One address per line, or a CSV with a column named “email”. A new list replaces the old one.')),
    listStatus);
  listInput.addEventListener('change', async () => {
    const file = listInput.files && listInput.files[0];
    if (!file) return;
    listStatus.dataset.state = '';
    listStatus.textContent = `Uploading ${file.name}…`;
    try {
      const r = await api(`/campaigns/${enc(id)}/recipients`, { method: 'PUT', raw: await file.text(), type: 'text/csv' });
      const bad = Array.isArray(r && r.invalid) ? r.invalid : [];
      const invalid = Number(r && r.invalid_count) || bad.length;
      listStatus.dataset.state = 'good';
      listStatus.textContent = `List saved: ${count(r && r.sent)} recipients.${invalid
        ? ` ${count(invalid)} ${invalid === 1 ? 'line was' : 'lines were'} not an address and left out${bad.length ? ` (${bad.slice(0, 3).join(', ')}${invalid > 3 ? ', …' : ''})` : ''}.` : ''}`;
      listInput.value = '';
      loadReport();
    } catch (err) {
      listStatus.dataset.state = 'bad';
      listStatus.textContent = `Could not save the list: ${err.message}`;
    }
  });

  // ---- Recipients, sorted on the server.
  let sort = { key: 'last_view_at', order: 'desc' };
  let recNext = null;
  const recBody = h('tbody');
  const recMore = h('button', { type: 'button', class: 'secondary', hidden: true, id: 'rec-more' }, 'Show more recipients');
  const recHead = h('tr');
  const recTable = h('div', { class: 'table-wrap' }, h('table', { class: 'recipients', id: 'recipients' },
    h('caption', { class: 'visually-hidden' }, 'Views per recipient; the column buttons sort it'),
    h('thead', {}, recHead), recBody));
  function drawRecHead() {
    clear(recHead);
    for (const [key, label, first] of COLUMNS) {
      const cls = ['views', 'machine', 'self', 'clicks'].includes(key) ? 'num' : '';
      if (!first) {
        recHead.append(h('th', { scope: 'col', class: cls }, label));
        continue;
      }
      const active = sort.key === key;
      const b = h('button', { type: 'button', class: 'sort', dataset: { sort: key } }, label,
        h('span', { class: 'sort-mark', 'aria-hidden': 'true' }, active ? (sort.order === 'asc' ? ' ▲' : ' ▼') : ''));
      b.addEventListener('click', () => {
        sort = { key, order: active ? (sort.order === 'asc' ? 'desc' : 'asc') : first };
        drawRecHead();
        loadRecipients().catch((err) => {
          recStatus.textContent = `Could not sort: ${err.message}`;
        });
        recHead.querySelector(`button[data-sort="${key}"]`).focus();
      });
      recHead.append(h('th', {
        scope: 'col', class: cls,
        'aria-sort': active ? (sort.order === 'asc' ? 'ascending' : 'descending') : 'none',
      }, b));
    }
  }
  drawRecHead();
  const recStatus = h('p', { class: 'muted small', role: 'status', id: 'rec-status' });

  function recRows(list) {
    for (const r of list) {
      recBody.append(h('tr', {},
        h('th', { scope: 'row' }, recipientText(r.recipient)),
        h('td', { class: 'num', dataset: { label: 'Views' } }, count(r.views)),
        h('td', { class: 'num', dataset: { label: 'Machine' } }, count(r.machine)),
        h('td', { class: 'num', dataset: { label: 'Self' } }, count(r.self)),
        h('td', { class: 'num', dataset: { label: 'Clicks' } }, count(r.clicks)),
        h('td', { dataset: { label: 'First open' } }, when(r.first_view_at, { empty: '—' })),
        h('td', { dataset: { label: 'Last open' } }, when(r.last_view_at, { empty: '—' }))));
    }
  }

  async function recPage(cursor) {
    const q = new URLSearchParams({ limit: String(RECIPIENTS), sort: sort.key, order: sort.order });
    if (cursor) q.set('next', cursor);
    return api(`/campaigns/${enc(id)}/recipients-table?${q}`);
  }

  let recSeq = 0;
  async function loadRecipients() {
    const seq = ++recSeq;
    const t = await recPage(null);
    if (gone || seq !== recSeq) return;
    clear(recBody);
    const list = Array.isArray(t.recipients) ? t.recipients : [];
    if (!list.length) recBody.append(h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No views yet.')));
    recRows(list);
    recNext = t.next ?? null;
    recMore.hidden = recNext === null;
    recStatus.textContent = '';
  }

  recMore.addEventListener('click', async () => {
    recMore.disabled = true;
    try {
      const t = await recPage(recNext);
      recRows(t.recipients || []);
      recNext = t.next ?? null;
      recMore.hidden = recNext === null;
    } catch (err) {
      recStatus.textContent = `Could not load more: ${err.message}`;
    }
    recMore.disabled = false;
  });

  // ---- The log, filtered on the server.
  const log = h('ol', { class: 'log', id: 'log', 'aria-label': 'Opens and clicks, newest first' });
  const logMore = h('button', { type: 'button', class: 'secondary', hidden: true, id: 'log-more' }, 'Show older');
  const logStatus = h('p', { class: 'muted', id: 'log-status', role: 'status' });
  const announce = h('p', { class: 'visually-hidden', 'aria-live': 'polite', id: 'live-announce' });
  const f = {
    recipient: h('input', { id: 'f-recipient', name: 'recipient', autocomplete: 'off', spellcheck: 'false', placeholder: 'alice@example.com' }),
    class: h('select', { id: 'f-class', name: 'class' }, [['', 'Any'], ['human', 'human'], ['proxy', 'proxy'], ['machine', 'machine'], ['self', 'self']].map(([v, l]) => h('option', { value: v }, l))),
    kind: h('select', { id: 'f-kind', name: 'kind' }, [['', 'Any'], ['open', 'open'], ['click', 'click'], ['print', 'print'], ['forward', 'forward']].map(([v, l]) => h('option', { value: v }, l))),
    country: h('input', { id: 'f-country', name: 'country', autocomplete: 'off', maxlength: 2, placeholder: 'FR', size: 3 }),
    client: h('input', { id: 'f-client', name: 'client', autocomplete: 'off', spellcheck: 'false', placeholder: 'Outlook', list: 'client-names', title: 'The client as the parser names it (an open’s details show it)' }),
  };
  // The clients of the report, by their parsed names (what the filter matches), labelled as shown.
  const clientNames = h('datalist', { id: 'client-names' });
  const field = (key, label) => h('div', { class: 'field' }, h('label', { for: `f-${key}` }, label), f[key]);
  const filters = h('form', { class: 'filters', id: 'log-filters', role: 'search', 'aria-label': 'Filter the log' },
    field('recipient', 'Recipient'), field('class', 'Class'), field('kind', 'Kind'), field('country', 'Country code'), field('client', 'Client'), clientNames,
    h('div', { class: 'filter-actions' },
      h('button', { type: 'submit', id: 'f-apply' }, 'Filter'),
      h('button', { type: 'reset', class: 'secondary', id: 'f-reset' }, 'Clear')));
  let before = null;
  let logSeq = 0;
  const shownIds = new Set();

  function filterQuery() {
    const { from, to } = rangeBounds(range.range());
    const q = new URLSearchParams({ limit: String(PAGE) });
    for (const [k, el] of Object.entries(f)) if (el.value.trim()) q.set(k, k === 'country' ? el.value.trim().toUpperCase() : el.value.trim());
    if (from !== null) q.set('from', new Date(from).toISOString());
    if (to !== null) q.set('to', new Date(to).toISOString());
    return q;
  }
  const filtered = () => Object.values(f).some((el) => el.value.trim() !== '');

  async function loadLog(more) {
    const seq = ++logSeq;
    const q = filterQuery();
    if (more && before !== null) q.set('before', String(before));
    const data = await api(`/campaigns/${enc(id)}/events?${q}`);
    if (gone || seq !== logSeq) return;
    const list = Array.isArray(data) ? data : (data && Array.isArray(data.events) ? data.events : []);
    if (!more) {
      clear(log);
      shownIds.clear();
    }
    for (const e of list) {
      if (shownIds.has(e.id)) continue;
      shownIds.add(e.id);
      log.append(logItem(e, rm, false));
    }
    before = list.length ? list[list.length - 1].id : before;
    const next = data && !Array.isArray(data) && 'next' in data ? data.next : undefined;
    if (next !== undefined) before = next;
    logMore.hidden = next !== undefined ? next === null : list.length < PAGE;
    logStatus.textContent = shownIds.size ? `${count(shownIds.size)} shown, newest first${filtered() ? ', filtered' : ''}.`
      : filtered() ? 'Nothing matches these filters in this range.'
        : 'No opens in this range. Put the pixel in an email and they will show up here.';
  }
  function reloadLog() {
    before = null;
    loadLog(false).catch((err) => {
      logStatus.textContent = `Could not load the log: ${err.message}`;
    });
  }
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    reloadLog();
  });
  filters.addEventListener('reset', () => setTimeout(reloadLog, 0));
  logMore.addEventListener('click', async () => {
    logMore.disabled = true;
    try {
      await loadLog(true);
    } catch (err) {
      logStatus.textContent = `Could not load older ones: ${err.message}`;
    }
    logMore.disabled = false;
  });

  // ---- Live: new events go on top when the log shows the present unfiltered.
  const live = subscribe(`/api/v1/campaigns/${enc(id)}/stream`, {
    onEvent: (ev) => {
      if (ev.campaign && ev.campaign !== id) return;
      if (ev.kind === 'read') { // a read time folded into an open already shown
        scheduleRefresh();
        return;
      }
      announce.textContent = `New ${ev.kind === 'click' ? 'click' : 'open'}: ${ev.recipient || 'no recipient'}, ${ev.class}`;
      const { to } = rangeBounds(range.range());
      if (!filtered() && to === null && ev.id !== undefined && !shownIds.has(ev.id)) {
        shownIds.add(ev.id);
        log.prepend(logItem(ev, rm, true));
        logStatus.textContent = `${count(shownIds.size)} shown, newest first.`;
      }
      scheduleRefresh();
    },
    onResync: () => {
      reloadLog();
      scheduleRefresh();
    },
  });

  let refreshTimer = null;
  const scheduleRefresh = () => {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      loadReport();
      loadSummary().catch(() => {});
      loadRecipients().catch(() => {});
    }, 300);
  };

  // ---- Report.
  let chartWidth = 0;
  function drawChart() {
    if (report) clear(chartBox).append(chart(report, chartBox.clientWidth));
  }
  const resize = new ResizeObserver(() => {
    if (chartBox.clientWidth && Math.abs(chartBox.clientWidth - chartWidth) > 8) {
      chartWidth = chartBox.clientWidth;
      drawChart();
    }
  });
  resize.observe(chartBox);

  function drawRates(r) {
    clear(ratesBox);
    const t = rateTiles(r);
    if (t) {
      const notOpened = typeof r.sent_opened === 'number' ? r.sent - r.sent_opened : null;
      ratesBox.append(t,
        h('p', { class: 'actions' },
          notOpened !== null ? h('span', { id: 'not-opened-count' }, `${count(notOpened)} of ${count(r.sent)} did not open${range.range().preset === 'all' ? '' : ' in this range'}.`) : null,
          download(`/api/v1/campaigns/${enc(id)}/not-opened.csv`, `${id}-not-opened.csv`, 'Export who never opened (CSV)', 'export-not-opened')));
    } else {
      ratesBox.append(h('p', { id: 'rates-need' },
        'Open, click and click-to-open rates need the list of people this campaign was sent to: upload it below. ',
        'Until then the page counts views, not people reached.'));
    }
  }

  let reportSeq = 0;
  async function loadReport() {
    const seq = ++reportSeq;
    reportStatus.textContent = 'Loading the report…';
    let r;
    try {
      r = await fetchReport(id, range.range(), range.bucket(), campaign && campaign.created_at ? Date.parse(campaign.created_at) : null);
    } catch (err) {
      if (gone || seq !== reportSeq) return;
      reportStatus.textContent = `Could not load the report: ${err.message}`;
      return;
    }
    if (gone || seq !== reportSeq) return;
    report = r;
    reportTiles(r, tiles);
    drawRates(r);
    drawChart();
    clear(timeBox).append(...timeViews(r));
    clear(breakdowns).append(...breakdownCards(r));
    clear(clientNames);
    for (const c of (r.breakdowns && r.breakdowns.client) || []) {
      if (c.name && clientName(c.name) !== c.name) clientNames.append(h('option', { value: c.name, label: clientName(c.name) }));
      else if (c.name) clientNames.append(h('option', { value: c.name }));
    }
    reportStatus.textContent = `${rangeText(range.range())}, times in ${r.tz || zone()}. Every figure is over all events in the range; breakdowns count human and proxy opens, each by what describes the reader (proxy opens go under their proxy).`;
  }

  // ---- Links and the trackers made for the campaign.
  const trackersBody = h('tbody');
  const trackersMore = h('button', { type: 'button', class: 'secondary', id: 'trackers-more', hidden: true }, 'Show older trackers');
  let trackersBefore = null;
  async function loadLinks() {
    let data;
    try {
      data = await api(`/campaigns/${enc(id)}/links`);
    } catch (err) {
      clear(linksBox).append(h('p', { class: 'muted' }, `Could not load the links: ${err.message}`));
      return;
    }
    if (gone) return;
    const links = Array.isArray(data) ? data : (data && Array.isArray(data.links) ? data.links : []);
    clear(linksBox);
    if (!links.length) linksBox.append(h('p', { class: 'muted', id: 'links-none' }, 'No tracked links yet. Make one on the ', h('a', { href: `#/create?campaign=${enc(id)}` }, 'creator page'), '.'));
    else {
      linksBox.append(h('div', { class: 'table-wrap' }, h('table', { id: 'links-table', class: 'links' },
        h('caption', { class: 'visually-hidden' }, 'Tracked links by destination, most clicked first'),
        h('thead', {}, h('tr', {}, ['Destination', 'Links made', 'Clicks', 'Unique clickers', 'First click', 'Last click'].map((t, i) => h('th', { scope: 'col', class: i >= 1 && i <= 3 ? 'num' : '' }, t)))),
        h('tbody', {}, links.map((l) => h('tr', {},
          h('th', { scope: 'row', class: 'target' }, h('code', {}, l.target || '')),
          h('td', { class: 'num', dataset: { label: 'Links made' } }, count(l.made)),
          h('td', { class: 'num', dataset: { label: 'Clicks' } }, count(l.clicks)),
          h('td', { class: 'num', dataset: { label: 'Unique clickers' } }, count(l.unique_clickers)),
          h('td', { dataset: { label: 'First click' } }, when(l.first_click_at, { empty: '—' })),
          h('td', { dataset: { label: 'Last click' } }, when(l.last_click_at, { empty: '—' }))))))));
    }
    linksBox.append(h('details', { class: 'trackers', id: 'trackers' },
      h('summary', {}, h('h3', { id: 'trackers-title' }, 'Everything made for this campaign')),
      h('p', { class: 'muted small' }, 'Pixels, links and images, newest first. Their addresses are shown, never loaded.'),
      h('div', { class: 'table-wrap' }, h('table', { id: 'trackers-table', class: 'links', 'aria-labelledby': 'trackers-title' },
        h('thead', {}, h('tr', {}, ['Kind', 'Recipient', 'Destination', 'Made', 'Address'].map((t) => h('th', { scope: 'col' }, t)))),
        trackersBody)), trackersMore));
    clear(trackersBody);
    trackersBefore = null;
    await loadTrackers();
  }
  async function loadTrackers() {
    const q = new URLSearchParams({ limit: '50' });
    if (trackersBefore !== null) q.set('before', String(trackersBefore));
    let data;
    try {
      data = await api(`/campaigns/${enc(id)}/trackers?${q}`);
    } catch (err) {
      trackersBody.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, `Could not load them: ${err.message}`)));
      return;
    }
    if (gone) return;
    const list = data && Array.isArray(data.trackers) ? data.trackers : [];
    if (!list.length && trackersBefore === null) trackersBody.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'Nothing made here yet.')));
    for (const t of list) {
      trackersBody.append(h('tr', {},
        h('th', { scope: 'row' }, t.kind || ''),
        h('td', { dataset: { label: 'Recipient' } }, t.recipient ? recipientText(t.recipient) : h('span', { class: 'muted' }, 'anyone')),
        h('td', { dataset: { label: 'Destination' } }, t.target ? h('code', {}, t.target) : h('span', { class: 'muted' }, '—')),
        h('td', { dataset: { label: 'Made' } }, when(t.created_at, { empty: '—' })),
        h('td', { dataset: { label: 'Address' } }, h('code', { class: 'addr', title: t.url || '' }, t.url || ''))));
    }
    trackersBefore = data && data.next_before !== undefined ? data.next_before : null;
    trackersMore.hidden = trackersBefore === null;
  }
  trackersMore.addEventListener('click', async () => {
    trackersMore.disabled = true;
    await loadTrackers();
    trackersMore.disabled = false;
  });

  // ---- Summary (campaign record, recipients).
  async function loadSummary() {
    const c = await api(`/campaigns/${enc(id)}?limit=1`);
    if (gone) return;
    campaign = c;
    append(clear(created), [c.created_at ? ['Created ', when(c.created_at)] : null,
      c.last_view_at ? [' · last open ', when(c.last_view_at), ` (${ago(c.last_view_at)})`] : null]);
    append(clear(engagementBox), engagementPanel(c.engagement));
    archivedNote.hidden = !c.archived;
    archive.textContent = c.archived ? 'Unarchive' : 'Archive';
  }

  archive.addEventListener('click', async () => {
    const to = !(campaign && campaign.archived);
    archive.disabled = true;
    try {
      await api(`/campaigns/${enc(id)}`, { method: 'PATCH', body: { archived: to } });
      notice.dataset.state = 'good';
      notice.textContent = to ? 'Archived. It stays here, and off the campaign list.' : 'Back on the campaign list.';
      await loadSummary();
    } catch (err) {
      notice.dataset.state = 'bad';
      notice.textContent = `Could not ${to ? 'archive' : 'unarchive'}: ${err.message}`;
    }
    archive.disabled = false;
  });

  del.addEventListener('click', async () => {
    const opens = campaign ? Object.values(campaign.by_class || {}).reduce((x, y) => x + (Number(y) || 0), 0) : 0;
    const yes = await confirmDialog({
      title: `Delete campaign ${id}?`,
      text: `This erases the campaign and everything it recorded (${count(opens)} ${opens === 1 ? 'open' : 'opens'}, ${count(campaign && campaign.clicks)} clicks). It cannot be undone, and pixels already sent will record nothing.`,
      confirm: 'Delete the campaign',
    });
    if (!yes) {
      del.focus();
      return;
    }
    try {
      const r = await api(`/campaigns/${enc(id)}`, { method: 'DELETE' });
      location.hash = `#/campaigns?deleted=${enc(id)}&events=${Number(r && r.deleted_events) || 0}`;
    } catch (err) {
      notice.dataset.state = 'bad';
      notice.textContent = `Could not delete: ${err.message}`;
    }
  });

  const body = h('div', { class: 'campaign', hidden: true },
    range.el, reportStatus, tiles,
    ratesCard, engagementBox,
    h('section', { class: 'card', 'aria-labelledby': 'chart-title' }, h('h2', { id: 'chart-title' }, 'Opens over time'), chartBox),
    timeBox, breakdowns,
    h('section', { class: 'card', id: 'links', 'aria-labelledby': 'links-title' }, h('h2', { id: 'links-title' }, 'Links'), linksBox),
    h('section', { class: 'card', 'aria-labelledby': 'rec-title' }, h('h2', { id: 'rec-title' }, 'Views per recipient'),
      h('p', { class: 'muted small' }, 'All time. Views count human and proxy opens; machine and self opens are apart. Sort by any column.'),
      recTable, recStatus, recMore),
    h('section', { class: 'card', 'aria-labelledby': 'log-title' },
      h('h2', { id: 'log-title' }, 'Opens and clicks'),
      h('p', { class: 'muted small' }, 'In the chosen range, newest first; new ones appear here as they happen. Open one to see everything it told.'),
      filters, logStatus, log, logMore));
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading…');
  root.append(head, notice, status, body, announce);

  (async () => {
    try {
      await loadSummary();
      if (gone) return;
      append(tools, [live.el,
        download(`/api/v1/campaigns/${enc(id)}/events.csv`, `${id}-events.csv`, 'Export CSV', 'export-csv', 'Every event; times in UTC (ISO 8601)'),
        download(`/api/v1/campaigns/${enc(id)}/events.json`, `${id}-events.json`, 'Export JSON', 'export-json', 'Every event; times in UTC (ISO 8601)'),
        h('a', { class: 'button secondary', href: `#/compare?a=${enc(id)}` }, 'Compare'),
        archive, del,
        h('a', { class: 'button', href: `#/create?campaign=${enc(id)}` }, 'New pixel')]);
      tools.hidden = false;
      status.remove();
      body.hidden = false;
      loadReport();
      reloadLog();
      loadLinks();
      loadRecipients().catch((err) => {
        recStatus.textContent = `Could not load the recipients: ${err.message}`;
      });
    } catch (err) {
      if (gone) return;
      live.close();
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
    clearTimeout(refreshTimer);
    resize.disconnect();
    live.close();
  };
}

