// dom: building elements safely. Every value that came from a request goes in as text.
// SPDX-License-Identifier: MIT

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style') throw new Error('style attributes are blocked by the CSP; use classes');
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** Appends children: nodes as they are, everything else as text (never parsed as HTML). */
export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** h('p', {class: 'x'}, 'text', child...) */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const shortTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'short' });

/** A <time> in local time, with the ISO string in its title. */
export function when(iso, { short = false, empty = 'never' } = {}) {
  if (!iso) return h('span', { class: 'muted' }, empty);
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('span', {}, String(iso));
  return h('time', { datetime: iso, title: iso }, (short ? shortTime : dateTime).format(d));
}

const rel = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** "3 minutes ago", for a compact hint next to a full timestamp. */
export function ago(iso, now = Date.now()) {
  if (!iso) return '';
  const s = (new Date(iso).getTime() - now) / 1000;
  if (Number.isNaN(s)) return '';
  const steps = [[60, 'second'], [60, 'minute'], [24, 'hour'], [30, 'day'], [12, 'month'], [Infinity, 'year']];
  let v = s;
  for (const [n, unit] of steps) {
    if (Math.abs(v) < n) return rel.format(Math.round(v), unit);
    v /= n;
  }
  return '';
}

const num = new Intl.NumberFormat();
export function count(n) {
  return num.format(Number(n) || 0);
}

let regionNames = null;
try {
  regionNames = new Intl.DisplayNames(['en'], { type: 'region' });
} catch {
  regionNames = null;
}

/** "France (FR)" from "FR"; the code itself when unknown. */
export function countryName(code) {
  if (!code) return '';
  try {
    const name = regionNames && /^[A-Z]{2}$/.test(code) ? regionNames.of(code) : '';
    return name && name !== code ? `${name} (${code})` : code;
  } catch {
    return code;
  }
}

/** Joins the non-empty parts with SEP. */
export function joined(parts, sep = ' ') {
  return parts.filter((p) => p !== null && p !== undefined && p !== '').join(sep);
}

/** The allowed ID characters: letters, digits and - _ @ + . (1..128 bytes). */
export const ID_CHARS = /[A-Za-z0-9\-_@+.]/;
export const ID_MAX = 128;

/** The characters of S outside the allowed set, each once, in order. */
export function badIdChars(s) {
  const bad = [];
  for (const c of s) if (!ID_CHARS.test(c) && !bad.includes(c)) bad.push(c);
  return bad;
}

export function idProblem(s, { required }) {
  if (s === '') return required ? 'required' : '';
  const bad = badIdChars(s);
  if (bad.length) {
    const shown = bad.map((c) => (c === ' ' ? 'space' : c === '\t' ? 'tab' : `“${c}”`)).join(', ');
    return `Not allowed: ${shown}. Use only letters, digits and - _ @ + .`;
  }
  if (new TextEncoder().encode(s).length > ID_MAX) return `Too long: at most ${ID_MAX} characters.`;
  return '';
}

/** The route of a campaign's page. */
export function campaignHref(id) {
  return `#/campaigns/${encodeURIComponent(id)}`;
}
