// chart: opens over time and by hour or weekday as SVG bars, breakdowns as bar lists. No library.
// SPDX-License-Identifier: MIT

import { h, svg, count, dateFormat } from './dom.js';

const STEP_NAME = { hour: 'hour', day: 'day', week: 'week' };

function label(t, bucket) {
  return bucket === 'hour'
    ? dateFormat({ month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(t)
    : dateFormat({ month: 'short', day: 'numeric' }).format(t);
}

/**
 * The opens-over-time chart from the server's SERIES ([{t, counted, machine, self, clicks}],
 * one per BUCKET in the chosen zone), with a text summary for screen readers. Counted opens
 * and the rest (machine, self) are two stacked series.
 */
export function timeChart(series, { bucket = 'day', width = 720 } = {}) {
  const buckets = (Array.isArray(series) ? series : []).map((b) => ({
    t: Date.parse(b.t),
    counted: Number(b.counted) || 0,
    other: (Number(b.machine) || 0) + (Number(b.self) || 0),
    clicks: Number(b.clicks) || 0,
  })).filter((b) => !Number.isNaN(b.t));
  const total = buckets.reduce((a, b) => a + b.counted, 0);
  const other = buckets.reduce((a, b) => a + b.other, 0);
  if (!buckets.length || total + other === 0) return h('p', { class: 'muted empty-chart' }, 'No opens in this range.');
  const stepName = STEP_NAME[bucket] || bucket;
  // Drawn at the box's own width, so that text is never stretched.
  const W = Math.max(260, Math.round(width || 720));
  const H = 180;
  const pad = { l: 44, r: 8, t: 10, b: 26 };
  const peak = Math.max(1, ...buckets.map((b) => b.counted + b.other));
  const bw = (W - pad.l - pad.r) / buckets.length;
  const y = (v) => pad.t + (H - pad.t - pad.b) * (1 - v / peak);
  const first = buckets[0].t;
  const last = buckets[buckets.length - 1].t;
  const summary = `Opens per ${stepName} from ${label(first, bucket)} to ${label(last, bucket)}: ${total} counted, ${other} machine or self; at most ${peak} in one ${stepName}.`;

  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'time-chart', role: 'img', 'aria-label': summary });
  for (const v of [0, peak]) {
    chart.append(svg('line', { class: 'grid', x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v) }));
    chart.append(svg('text', { class: 'axis', x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, count(v)));
  }
  buckets.forEach((b, i) => {
    const x = pad.l + i * bw + Math.min(1, bw * 0.1);
    const w = Math.max(1, bw - Math.min(2, bw * 0.2));
    const g = svg('g', {}, svg('title', {}, `${label(b.t, bucket)}: ${b.counted} counted, ${b.other} machine or self, ${b.clicks} clicks`));
    if (b.counted) g.append(svg('rect', { class: 'bar counted', x, width: w, y: y(b.counted), height: y(0) - y(b.counted) }));
    if (b.other) g.append(svg('rect', { class: 'bar other', x, width: w, y: y(b.counted + b.other), height: y(b.counted) - y(b.counted + b.other) }));
    chart.append(g);
  });
  const ticks = Math.min(buckets.length, Math.max(2, Math.floor(W / 170)));
  for (let k = 0; k < ticks; k++) {
    const i = ticks === 1 ? 0 : Math.round((k * (buckets.length - 1)) / (ticks - 1));
    const anchor = k === 0 ? 'start' : k === ticks - 1 ? 'end' : 'middle';
    const x = pad.l + i * bw + (anchor === 'start' ? 0 : anchor === 'end' ? bw : bw / 2);
    chart.append(svg('text', { class: 'axis', x, y: H - 8, 'text-anchor': anchor }, label(buckets[i].t, bucket)));
  }
  return h('figure', { class: 'chart' }, chart,
    h('figcaption', { class: 'legend' },
      h('span', { class: 'key counted' }, 'Counted (human, proxy)'),
      h('span', { class: 'key other' }, 'Machine and self'),
      h('span', { class: 'muted' }, ` · one bar per ${stepName}`)));
}

/**
 * A small column chart of VALUES under LABELS (hour of day, day of week), with the values
 * also as a table for screen readers and for reading exact numbers.
 */
export function columnChart(title, values, labels, id) {
  const v = labels.map((_, i) => Number(values && values[i]) || 0);
  const peak = Math.max(1, ...v);
  const W = 24 * labels.length;
  const H = 90;
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H + 14}`, class: 'col-chart', 'aria-hidden': 'true' });
  v.forEach((c, i) => {
    const bh = (H * c) / peak;
    chart.append(svg('g', {}, svg('title', {}, `${labels[i]}: ${c}`),
      svg('rect', { class: 'bar counted', x: i * 24 + 3, width: 18, y: H - bh, height: Math.max(c ? 1 : 0, bh) })));
    if (labels.length <= 7 || i % 3 === 0) chart.append(svg('text', { class: 'axis', x: i * 24 + 12, y: H + 12, 'text-anchor': 'middle' }, labels[i]));
  });
  const table = h('table', { class: 'visually-hidden' },
    h('caption', {}, title),
    h('tbody', {}, labels.map((l, i) => h('tr', {}, h('th', { scope: 'row' }, l), h('td', {}, String(v[i]))))));
  return h('section', { class: 'card breakdown', id },
    h('h3', { id: `${id}-title` }, title), chart, table);
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
