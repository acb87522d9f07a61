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

// One language on every page: the dashboard's text is English, so dates, numbers, relative
// times and place names are too, whatever the browser's language.
export const LANG = 'en';
const TZ_KEY = 'spypixel.tz';

function validZone(tz) {
  try {
    new Intl.DateTimeFormat(LANG, { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** The browser's own time zone (IANA name). */
export function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/** The time zone every date is shown in: the one chosen last, else the browser's. */
export function zone() {
  let tz = '';
  try {
    tz = localStorage.getItem(TZ_KEY) || '';
  } catch {
    tz = '';
  }
  return tz && validZone(tz) ? tz : browserZone();
}

/** Chooses (and remembers) the zone; a bad name is refused. Returns whether it was taken. */
export function setZone(tz) {
  if (!validZone(tz)) return false;
  try {
    localStorage.setItem(TZ_KEY, tz);
  } catch {
    // Private mode: it holds for this page only.
  }
  fmtCache.clear();
  return true;
}

/** Every zone the browser knows, for a picker. */
export function zones() {
  const list = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  const all = new Set([...list, 'UTC', browserZone(), zone()]);
  return [...all].sort();
}

const fmtCache = new Map();
/** An Intl.DateTimeFormat in the page's language and the chosen zone, made once per options. */
export function dateFormat(opts) {
  const key = JSON.stringify(opts) + zone();
  let f = fmtCache.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(LANG, { ...opts, timeZone: zone() });
    fmtCache.set(key, f);
  }
  return f;
}

const FULL = { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23', timeZoneName: 'short' };

/** "Dec 4, 2026, 19:33:46 UTC" in the chosen zone: the one format of a moment on every page. */
export function formatTime(t) {
  return dateFormat(FULL).format(t);
}

/** A <time> in the chosen zone, with the ISO string (UTC) in its title. */
export function when(iso, { empty = 'never' } = {}) {
  if (!iso) return h('span', { class: 'muted' }, empty);
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('span', {}, String(iso));
  return h('time', { datetime: iso, title: iso }, formatTime(d));
}

const rel = new Intl.RelativeTimeFormat(LANG, { numeric: 'auto' });

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

const num = new Intl.NumberFormat(LANG);
export function count(n) {
  return num.format(Number(n) || 0);
}

const pct = new Intl.NumberFormat(LANG, { style: 'percent', maximumFractionDigits: 1 });
/** "42.5%" from 0.425; a dash for null. */
export function percent(x) {
  return typeof x === 'number' && Number.isFinite(x) ? pct.format(x) : '—';
}

let regionNames = null;
try {
  regionNames = new Intl.DisplayNames([LANG], { type: 'region' });
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

/** The route of a recipient's page. */
export function recipientHref(addr) {
  return `#/recipients/${encodeURIComponent(addr)}`;
}

/**
 * Asks before something that cannot be undone, in a modal <dialog> (keyboard: Tab between
 * the buttons, Escape cancels). Resolves true when the user confirms.
 */
export function confirmDialog({ title, text, confirm, danger = true }) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: danger ? 'danger' : '', id: 'confirm-ok' }, confirm);
    const cancel = h('button', { type: 'button', class: 'secondary', id: 'confirm-cancel' }, 'Cancel');
    const dlg = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-text' },
      h('h2', { id: 'confirm-title' }, title),
      h('p', { id: 'confirm-text' }, text),
      h('div', { class: 'actions' }, cancel, ok));
    let answer = false;
    ok.addEventListener('click', () => {
      answer = true;
      dlg.close();
    });
    cancel.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(answer);
    });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}
