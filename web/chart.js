// chart: opens over time as an SVG bar chart, and breakdowns as bar lists. No library needed.
// SPDX-License-Identifier: MIT

import { h, svg, count } from './dom.js';

const MIN = 60e3;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const STEPS = [
  [MIN, 'minute'], [5 * MIN, '5 minutes'], [15 * MIN, '15 minutes'], [HOUR, 'hour'],
  [3 * HOUR, '3 hours'], [6 * HOUR, '6 hours'], [DAY, 'day'], [7 * DAY, 'week'], [30 * DAY, '30 days'],
];
const MAX_BARS = 48;

const fmtTime = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const fmtDay = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const fmtFull = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

function label(t, step) {
  return step >= DAY ? fmtDay.format(t) : `${fmtDay.format(t)} ${fmtTime.format(t)}`;
}

/**
 * Buckets the opens of EVENTS (newest first or any order) by time. Counted opens (human and
 * proxy) and the rest (machine, self) are two stacked series.
 */
export function bucketize(events, now = Date.now()) {
  const opens = events.filter((e) => e.kind === 'open');
  const times = opens.map((e) => Date.parse(e.ts)).filter((t) => !Number.isNaN(t));
  if (!times.length) return null;
  const first = Math.min(...times);
  const last = Math.max(...times, Math.min(now, Math.max(...times) + HOUR));
  let [step, stepName] = STEPS[STEPS.length - 1];
  for (const [s, n] of STEPS) {
    if ((last - first) / s < MAX_BARS) {
      [step, stepName] = [s, n];
      break;
    }
  }
  const tz = new Date(first).getTimezoneOffset() * MIN;
  const start = step >= DAY ? Math.floor((first - tz) / DAY) * DAY + tz : Math.floor(first / step) * step;
  const n = Math.max(1, Math.floor((last - start) / step) + 1);
  const buckets = Array.from({ length: n }, (_, i) => ({ t: start + i * step, counted: 0, other: 0 }));
  for (const e of opens) {
    const t = Date.parse(e.ts);
    if (Number.isNaN(t)) continue;
    const i = Math.min(n - 1, Math.max(0, Math.floor((t - start) / step)));
    if (e.class === 'human' || e.class === 'proxy') buckets[i].counted++;
    else buckets[i].other++;
  }
  return { buckets, step, stepName };
}

/** The opens-over-time chart, with a text summary for screen readers. */
export function timeChart(events, width) {
  const data = bucketize(events);
  if (!data) return h('p', { class: 'muted empty-chart' }, 'No opens yet.');
  const { buckets, step, stepName } = data;
  // Drawn at the box's own width, so that text is never stretched.
  const W = Math.max(260, Math.round(width || 720));
  const H = 180;
  const pad = { l: 34, r: 8, t: 10, b: 26 };
  const peak = Math.max(1, ...buckets.map((b) => b.counted + b.other));
  const bw = (W - pad.l - pad.r) / buckets.length;
  const y = (v) => pad.t + (H - pad.t - pad.b) * (1 - v / peak);
  const total = buckets.reduce((a, b) => a + b.counted, 0);
  const other = buckets.reduce((a, b) => a + b.other, 0);
  const summary = `Opens per ${stepName} from ${fmtFull.format(buckets[0].t)} to ${fmtFull.format(buckets[buckets.length - 1].t + step)}: ${total} counted, ${other} machine or self; at most ${peak} in one ${stepName}.`;

  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'time-chart', role: 'img', 'aria-label': summary });
  for (const v of [0, peak]) {
    chart.append(svg('line', { class: 'grid', x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v) }));
    chart.append(svg('text', { class: 'axis', x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)));
  }
  buckets.forEach((b, i) => {
    const x = pad.l + i * bw + Math.min(1, bw * 0.1);
    const w = Math.max(1, bw - Math.min(2, bw * 0.2));
    const g = svg('g', {}, svg('title', {}, `${label(b.t, step)}: ${b.counted} counted, ${b.other} machine or self`));
    if (b.counted) g.append(svg('rect', { class: 'bar counted', x, width: w, y: y(b.counted), height: y(0) - y(b.counted) }));
    if (b.other) g.append(svg('rect', { class: 'bar other', x, width: w, y: y(b.counted + b.other), height: y(b.counted) - y(b.counted + b.other) }));
    chart.append(g);
  });
  const ticks = Math.min(buckets.length, Math.max(2, Math.floor(W / 170)));
  for (let k = 0; k < ticks; k++) {
    const i = ticks === 1 ? 0 : Math.round((k * (buckets.length - 1)) / (ticks - 1));
    const anchor = k === 0 ? 'start' : k === ticks - 1 ? 'end' : 'middle';
    const x = pad.l + i * bw + (anchor === 'start' ? 0 : anchor === 'end' ? bw : bw / 2);
    chart.append(svg('text', { class: 'axis', x, y: H - 8, 'text-anchor': anchor }, label(buckets[i].t, step)));
  }
  return h('figure', { class: 'chart' }, chart,
    h('figcaption', { class: 'legend' },
      h('span', { class: 'key counted' }, 'Counted (human, proxy)'),
      h('span', { class: 'key other' }, 'Machine and self'),
      h('span', { class: 'muted' }, ` · one bar per ${stepName}`)));
}

/** Top N of KEY(event) over EVENTS, as [label, count], the rest folded into "Other". */
export function tally(events, key, n = 8) {
  const m = new Map();
  for (const e of events) {
    const k = key(e) || 'Unknown';
    m.set(k, (m.get(k) || 0) + 1);
  }
  const all = [...m.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (all.length <= n) return all;
  const rest = all.slice(n - 1).reduce((a, [, c]) => a + c, 0);
  return [...all.slice(0, n - 1), ['Other', rest]];
}

/** A titled list of horizontal bars. */
export function barList(title, rows, id) {
  const max = Math.max(1, ...rows.map(([, c]) => c));
  const list = h('ol', { class: 'bars', 'aria-labelledby': `${id}-title` });
  for (const [name, c] of rows) {
    const fill = h('span', { class: 'bar-fill' });
    fill.style.width = `${Math.max(2, (100 * c) / max)}%`; // CSSOM, allowed by the CSP
    list.append(h('li', {}, h('span', { class: 'bar-label' }, name), h('span', { class: 'bar-count' }, count(c)),
      h('span', { class: 'bar-track', 'aria-hidden': 'true' }, fill)));
  }
  return h('section', { class: 'card breakdown', id },
    h('h3', { id: `${id}-title` }, title),
    rows.length ? list : h('p', { class: 'muted' }, 'Nothing yet.'));
}
