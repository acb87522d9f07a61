// eventlog: one open or click as a row of a log, folding open to everything it told.
// SPDX-License-Identifier: MIT

import { api, enc } from './api.js';
import { h, when, countryName, joined, recipientHref } from './dom.js';
import { clientLabel, osLabel } from './names.js';

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
/** The class rule table by name, fetched once. */
export function rules() {
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

export function badge(cls) {
  const c = CLASS_TEXT[cls] ? cls : 'unknown';
  return h('span', { class: `badge ${c}`, title: CLASS_HELP[c] || '' }, CLASS_TEXT[c] || String(cls || '?'));
}

function clientText(e) {
  return joined([clientLabel(e.browser, e.browser_version), e.os && `on ${osLabel(e.os, e.os_version)}`]);
}

function placeText(e) {
  if (e.city || e.country) return joined([e.city, countryName(e.country)], ', ');
  return e.geo_label ? e.geo_label : '';
}

/** A recipient as a link to their page (the full address in its title), or a muted note. */
export function recipientText(r) {
  return r ? h('a', { href: recipientHref(r), class: 'addr', title: r }, r) : h('span', { class: 'muted' }, '(no recipient)');
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

/** The client as shown, with the parser's raw value beside it when the name differs. */
function named(shown, raw) {
  return raw && raw !== shown ? [shown, ' ', h('span', { class: 'muted small raw' }, `(parsed: ${raw})`)] : shown;
}

function eventDetail(e, ruleMap) {
  const proxy = e.class === 'proxy';
  const machine = e.class === 'machine';
  const click = e.kind === 'click';
  const via = e.via || (proxy ? 'a mail image proxy' : '');
  const proxyIp = proxy ? `The IP is ${via}’s, not the reader’s.` : null;
  const proxyPlace = proxy ? `The place is ${via}’s, not the reader’s.` : null;
  const proxyClient = proxy ? `This is ${via}, not the reader’s mail client.` : null;
  const proxySystem = proxy ? `This is what ${via} claims, not the reader’s system.` : null;
  const geo = e.geo_label && GEO_TEXT[e.geo_label] ? `(${GEO_TEXT[e.geo_label]})` : e.geo_label ? `(${e.geo_label})` : null;
  const rule = ruleMap.get(e.rule);
  const coords = typeof e.latitude === 'number' && typeof e.longitude === 'number' && (e.latitude || e.longitude)
    ? `${e.latitude.toFixed(4)}, ${e.longitude.toFixed(4)}` : '';
  const fetched = click ? 'A person followed the link.' : 'A person’s mail client fetched it.';

  const classNote = h('p', { class: `class-note ${e.class}` }, badge(e.class), ' ',
    proxy ? `Relayed by ${via}: counted, but the IP, the place, the client and the system below describe the proxy, not the reader.`
      : machine ? `Not counted: a machine ${click ? 'request' : 'fetch'}${e.via ? ` (${e.via})` : ''}, decided by the rule “${e.rule || '?'}”.`
        : e.class === 'self' ? `Not counted: your own ${click ? 'click' : 'view'}, decided by the rule “${e.rule || '?'}”.`
          : `${fetched} Counted.`);

  const browser = clientLabel(e.browser, e.browser_version);
  const system = osLabel(e.os, e.os_version);
  return h('div', { class: 'event-body' },
    classNote,
    h('div', { class: 'detail-grid' },
      h('section', {}, h('h4', {}, 'Client'),
        h('dl', {},
          row(click ? 'Browser' : 'Mail client', named(browser, joined([e.browser, e.browser_version])), proxyClient),
          row('Device', joined([e.device, joined([e.device_brand, e.device_model])], ' · '), proxy ? proxySystem : null),
          row('OS', named(system, joined([e.os, e.os_version])), proxySystem),
          row('Architecture', e.arch, proxy && e.arch ? proxySystem : null),
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
          e.engagement ? row('Engagement', e.read_ms === null || e.read_ms === undefined ? e.engagement : `${e.engagement} (${(e.read_ms / 1000).toFixed(1)} s)`) : null,
          row('Campaign', e.campaign),
          row('Recipient', e.recipient),
          row('Class', e.class),
          row('Rule', e.rule ? h('a', { href: `#/rules?rule=${enc(e.rule)}` }, e.rule) : '', rule && rule.reason ? rule.reason : null, 'note'),
          row('Referer', e.referer),
          click ? row('Target', e.target) : null,
          row('Event ID', String(e.id))))),
    table('Cookies', e.cookies, 'cookies'),
    table('Raw headers', e.headers, 'headers'));
}

/** One row of a log: E folds open to its details; RULEMAP() gives the rule table. */
export function logItem(e, ruleMap, fresh, { campaign = false } = {}) {
  const summary = h('summary', {},
    h('span', { class: 'ev-time' }, when(e.ts)),
    ' ', badge(e.class),
    e.kind && e.kind !== 'open' ? [' ', h('span', { class: `badge ${e.kind}` }, e.kind)] : null,
    campaign ? [' ', h('span', { class: 'ev-campaign' }, e.campaign || '')] : null,
    ' ', h('span', { class: 'ev-recipient', title: e.recipient || null }, e.recipient || h('span', { class: 'muted' }, '(no recipient)')),
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

