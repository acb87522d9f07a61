// engagement: the campaign page's panel of how the tracking block's opens were read (glanced,
// skimmed, read, unmeasured) and its prints, forwards and likely forwards, from GET /api/v1/campaigns/ID.
// SPDX-License-Identifier: MIT

import { h, count } from './dom.js';

const STEPS = [
  ['read', 'Read', '8 s or more'],
  ['skimmed', 'Skimmed', '2 to 8 s'],
  ['glanced', 'Glanced', 'under 2 s'],
  ['unmeasured', 'Unmeasured', 'a proxy, a machine, or too many held at once'],
];

/** The panel for engagement E (the campaign's "engagement" object); null when it has none. */
export function engagementPanel(e) {
  if (!e) return null;
  const measured = STEPS.reduce((n, [k]) => n + (e[k] || 0), 0);
  const bar = h('div', { class: 'engagement-bar', role: 'img', 'aria-label': STEPS.map(([k, label]) => `${label} ${e[k] || 0}`).join(', ') });
  for (const [k] of STEPS) {
    if (!e[k]) continue;
    const part = h('span', { class: `engagement-${k}` });
    part.style.flexGrow = String(e[k]); // CSSOM, which the CSP allows (no style attribute)
    bar.append(part);
  }
  return h('section', { class: 'card', id: 'engagement', 'aria-labelledby': 'engagement-title' },
    h('h2', { id: 'engagement-title' }, 'Engagement'),
    h('p', { class: 'muted small' }, measured
      ? 'Opens of the tracking block, by how long the message stayed open (Litmus\' steps).'
      : 'No opens of the tracking block yet: make one with "Tracking block" in the pixel creator.'),
    measured ? bar : null,
    h('dl', { class: 'tiles engagement-counts' },
      STEPS.map(([k, label, note]) => h('div', { class: 'tile', id: `engagement-${k}` },
        h('dt', {}, h('span', { class: `engagement-key engagement-${k}`, 'aria-hidden': 'true' }), label),
        h('dd', {}, count(e[k] || 0)), h('dd', { class: 'muted small' }, note))),
      h('div', { class: 'tile', id: 'engagement-prints' }, h('dt', {}, 'Prints'), h('dd', {}, count(e.prints || 0))),
      h('div', { class: 'tile', id: 'engagement-forwards' }, h('dt', {}, 'Forwards'), h('dd', {}, count(e.forwards || 0)),
        h('dd', { class: 'muted small' }, 'the forward CSS loaded')),
      h('div', { class: 'tile', id: 'engagement-likely-forwards' }, h('dt', {}, 'Likely forwards'), h('dd', {}, count(e.likely_forwards || 0)),
        h('dd', { class: 'muted small' }, 'a new client on another network, 10 min or more after the first open'))));
}
