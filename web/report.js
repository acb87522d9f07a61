// report: the date range and time zone controls, and a campaign's report from the server
// (totals, rates, chart, hour and weekday views, breakdowns), every figure over all events.
// SPDX-License-Identifier: MIT

import { api, enc } from './api.js';
import { h, clear, count, percent, zone, setZone, zones, browserZone, dateFormat, LANG } from './dom.js';
import { timeChart, columnChart, barList } from './chart.js';
import { breakdownName } from './names.js';
import { countryName } from './dom.js';

const HOUR = 3600e3;
const DAY = 24 * HOUR;

export const PRESETS = [
  ['24h', 'Last 24 hours', DAY],
  ['7d', 'Last 7 days', 7 * DAY],
  ['30d', 'Last 30 days', 30 * DAY],
  ['all', 'All time', null],
];

/** The offset (ms) of zone TZ from UTC at the moment T. */
function zoneOffset(t, tz) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(t);
  const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
  const asUtc = Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day), Number(p.hour) % 24, Number(p.minute), Number(p.second));
  return asUtc - Math.floor(t / 1000) * 1000;
}

/** The moment of the wall time VALUE ("2026-12-04T09:30", as a datetime-local gives) in TZ. */
export function wallToUtc(value, tz) {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)/.exec(value || '');
  if (!m) return NaN;
  const wall = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]));
  let t = wall - zoneOffset(wall, tz);
  t = wall - zoneOffset(t, tz); // again, in case the guess crossed a change of offset
  return t;
}

/** The wall time of moment T in TZ as a datetime-local value. */
export function utcToWall(t, tz) {
  const d = new Date(t + zoneOffset(t, tz));
  return d.toISOString().slice(0, 16);
}

/**
 * A range: {preset, from, to} where from and to are ms (or null for open ends). The bucket
 * follows the span unless the user picked one.
 */
export function rangeBounds(range, now = Date.now()) {
  if (range.preset === 'custom') return { from: range.from ?? null, to: range.to ?? null };
  const p = PRESETS.find(([k]) => k === range.preset);
  return { from: p && p[2] ? now - p[2] : null, to: null };
}

export function autoBucket(from, to, firstAt, now = Date.now()) {
  const start = from ?? firstAt ?? now - 30 * DAY;
  const span = (to ?? now) - start;
  if (span <= 3 * DAY) return 'hour';
  if (span <= 120 * DAY) return 'day';
  return 'week';
}

/** The query string of a report or log request over RANGE, in the chosen zone. */
export function rangeQuery(range, { bucket, now = Date.now() } = {}) {
  const { from, to } = rangeBounds(range, now);
  const q = new URLSearchParams();
  if (from !== null) q.set('from', new Date(from).toISOString());
  if (to !== null) q.set('to', new Date(to).toISOString());
  q.set('tz', zone());
  if (bucket) q.set('bucket', bucket);
  return q;
}

/** The range from a page's query (range=7d, or from and to as ISO times); "all" by default. */
export function rangeFromQuery(query) {
  const preset = query.get('range') || 'all';
  if (preset === 'custom') {
    const from = Date.parse(query.get('from') || '');
    const to = Date.parse(query.get('to') || '');
    return { preset, from: Number.isNaN(from) ? null : from, to: Number.isNaN(to) ? null : to };
  }
  return { preset: PRESETS.some(([k]) => k === preset) ? preset : 'all', from: null, to: null };
}

export function rangeToQuery(range, q = new URLSearchParams()) {
  q.delete('range');
  q.delete('from');
  q.delete('to');
  if (range.preset !== 'all') q.set('range', range.preset);
  if (range.preset === 'custom') {
    if (range.from !== null) q.set('from', new Date(range.from).toISOString());
    if (range.to !== null) q.set('to', new Date(range.to).toISOString());
  }
  return q;
}

/** "Dec 1, 2026 – Dec 4, 2026" or "Last 7 days", for headings and summaries. */
export function rangeText(range) {
  if (range.preset !== 'custom') return (PRESETS.find(([k]) => k === range.preset) || PRESETS[3])[1];
  const f = dateFormat({ year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  return `${range.from !== null ? f.format(range.from) : 'the start'} – ${range.to !== null ? f.format(range.to) : 'now'}`;
}

/**
 * The range and zone controls. ONCHANGE(range, bucket) after each choice; a zone change calls
 * ONZONE() (the page redraws every time shown). Returns {el, range(), bucket()}.
 */
export function rangeControls(initial, { onChange, onZone, bucketChoice = true }) {
  let range = { ...initial };
  let bucket = 'auto';
  const group = h('div', { class: 'presets', role: 'group', 'aria-label': 'Date range' });
  const buttons = new Map();
  for (const [key, label] of [...PRESETS, ['custom', 'Custom…']]) {
    const b = h('button', { type: 'button', class: 'secondary preset', dataset: { range: key }, 'aria-pressed': 'false' }, label);
    b.addEventListener('click', () => {
      if (key === 'custom') {
        custom.hidden = false;
        mark('custom');
        fromInput.focus();
        return;
      }
      custom.hidden = true;
      range = { preset: key, from: null, to: null };
      mark(key);
      onChange(range, bucket);
    });
    buttons.set(key, b);
    group.append(b);
  }
  const mark = (key) => {
    for (const [k, b] of buttons) b.setAttribute('aria-pressed', k === key ? 'true' : 'false');
  };

  const tz = zone();
  const fromInput = h('input', { type: 'datetime-local', id: 'range-from', name: 'from', value: range.from !== null && range.from !== undefined ? utcToWall(range.from, tz) : '' });
  const toInput = h('input', { type: 'datetime-local', id: 'range-to', name: 'to', value: range.to !== null && range.to !== undefined ? utcToWall(range.to, tz) : '' });
  const customError = h('p', { class: 'field-error', id: 'range-error', role: 'alert' });
  const custom = h('form', { class: 'custom-range', id: 'custom-range', hidden: range.preset !== 'custom', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'range-from' }, 'From'), fromInput),
    h('div', { class: 'field' }, h('label', { for: 'range-to' }, 'To'), toInput),
    h('button', { type: 'submit', id: 'range-apply' }, 'Apply'),
    customError);
  custom.addEventListener('submit', (e) => {
    e.preventDefault();
    const from = fromInput.value ? wallToUtc(fromInput.value, zone()) : null;
    const to = toInput.value ? wallToUtc(toInput.value, zone()) : null;
    if ((from !== null && Number.isNaN(from)) || (to !== null && Number.isNaN(to))) {
      customError.textContent = 'Enter the dates in full.';
      return;
    }
    if (from !== null && to !== null && from >= to) {
      customError.textContent = 'The start must come before the end.';
      return;
    }
    customError.textContent = '';
    range = { preset: 'custom', from, to };
    mark('custom');
    onChange(range, bucket);
  });

  const zoneSelect = h('select', { id: 'tz', name: 'tz' });
  for (const z of zones()) zoneSelect.append(h('option', { value: z, selected: z === tz }, z === browserZone() ? `${z} (this browser)` : z));
  zoneSelect.addEventListener('change', () => {
    if (setZone(zoneSelect.value) && onZone) onZone();
  });

  const bucketSelect = h('select', { id: 'bucket', name: 'bucket' },
    [['auto', 'Automatic'], ['hour', 'Hour'], ['day', 'Day'], ['week', 'Week']].map(([v, l]) => h('option', { value: v }, l)));
  bucketSelect.addEventListener('change', () => {
    bucket = bucketSelect.value;
    onChange(range, bucket);
  });

  mark(range.preset);
  const el = h('section', { class: 'card range', id: 'range', 'aria-label': 'Range and time zone' },
    h('div', { class: 'range-row' }, group,
      h('div', { class: 'field inline' }, h('label', { for: 'tz' }, 'Time zone'), zoneSelect),
      bucketChoice ? h('div', { class: 'field inline' }, h('label', { for: 'bucket' }, 'One bar per'), bucketSelect) : null),
    custom);
  return { el, range: () => range, bucket: () => bucket };
}

/** The report of campaign ID over RANGE; NOW fixes "the last 7 days" for several reports. */
export function fetchReport(id, range, bucket, firstAt, now = Date.now()) {
  const { from, to } = rangeBounds(range, now);
  const b = bucket && bucket !== 'auto' ? bucket : autoBucket(from, to, firstAt, now);
  return api(`/campaigns/${enc(id)}/report?${rangeQuery(range, { bucket: b, now })}`);
}

export function tile(label, value, note, id) {
  return h('div', { class: 'tile', id }, h('dt', {}, label), h('dd', {}, value), note ? h('dd', { class: 'muted small' }, note) : null);
}

/** The totals of report R as tiles. */
export function reportTiles(r, el) {
  const bc = r.by_class || {};
  return append2(clear(el),
    tile('Total views', count(r.total_views), 'human and proxy opens', 'tile-total'),
    tile('Unique views', count(r.unique_views), 'recipients, or distinct clients', 'tile-unique'),
    tile('Via proxy', count(bc.proxy), 'in the totals', 'tile-proxy'),
    tile('Machine opens', count(bc.machine), 'not counted', 'tile-machine'),
    tile('Self views', count(bc.self), 'not counted', 'tile-self'),
    tile('Clicks', count(r.clicks), r.unique_clickers !== undefined ? `${count(r.unique_clickers)} unique clickers` : null, 'tile-clicks'));
}

function append2(el, ...children) {
  el.append(...children);
  return el;
}

/** Whether report R has the list of people it was sent to. */
export function hasList(r) {
  return typeof r.sent === 'number' && r.sent > 0;
}

/** The rates of report R as tiles, or null without a recipient list. */
export function rateTiles(r) {
  if (!hasList(r)) return null;
  return h('dl', { class: 'tiles rates', id: 'rate-tiles', 'aria-label': 'Rates' },
    tile('Sent', count(r.sent), 'people on the list', 'rate-sent'),
    tile('Open rate', percent(r.open_rate), typeof r.sent_opened === 'number' ? `${count(r.sent_opened)} opened` : 'opened at least once', 'rate-open'),
    tile('Click rate', percent(r.click_rate), typeof r.sent_clicked === 'number' ? `${count(r.sent_clicked)} clicked` : 'clicked at least once', 'rate-click'),
    tile('Click-to-open', percent(r.click_to_open_rate), 'clickers among openers', 'rate-cto'));
}

const HOURS = Array.from({ length: 24 }, (_, i) => String(i).padStart(2, '0'));
// The report's day_of_week starts on Monday (ISO 8601).
const DAYS = Array.from({ length: 7 }, (_, i) => new Intl.DateTimeFormat(LANG, { weekday: 'short', timeZone: 'UTC' }).format(Date.UTC(2024, 0, 1 + i)));

export function timeViews(r) {
  return [
    columnChart(`Opens by hour of day (${zone()})`, r.hour_of_day, HOURS, 'by-hour'),
    columnChart('Opens by day of week', r.day_of_week, DAYS, 'by-weekday'),
  ];
}

const DIMENSIONS = [
  ['client', 'Mail clients'],
  ['os', 'Operating systems'],
  ['device', 'Devices'],
  ['country', 'Countries'],
  ['city', 'Cities'],
  ['via', 'Image proxies and scanners'],
];

function rowName(dim, name) {
  if (!name) return dim === 'via' ? 'Direct (no proxy)' : 'Unknown';
  if (dim === 'country') return countryName(name);
  return breakdownName(dim, name);
}

const SHOWN = 10; // rows of a breakdown; the server's counts of the rest are summed below

/** The breakdown lists of report R, named as people know them. */
export function breakdownCards(r) {
  const b = r.breakdowns || {};
  const others = r.breakdowns_others || {};
  return DIMENSIONS.map(([dim, title]) => {
    const all = (Array.isArray(b[dim]) ? b[dim] : []).map((x) => [rowName(dim, x.name), Number(x.count) || 0]);
    const rows = all.slice(0, SHOWN);
    const rest = (Number(others[dim]) || 0) + all.slice(SHOWN).reduce((a, [, c]) => a + c, 0);
    if (rest > 0) rows.push(['All others', rest]);
    return barList(title, rows, `by-${dim}`);
  });
}

export function chart(r, width) {
  return timeChart(r.series, { bucket: r.bucket, width });
}
