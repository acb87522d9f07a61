// names: the mail clients and systems by the names people know them by; the raw parser
// values stay in an open's details.
// SPDX-License-Identifier: MIT

import { joined } from './dom.js';

// The user-agent parser (uap-core) names the browser engine; a mail client that embeds it is
// what the reader used. Apple Mail on iOS loads images in a WKWebView and sends no Safari
// token; on macOS its version is WebKit's build (605.1.15), not the app's.
const CLIENTS = new Map([
  ['Mobile Safari UI/WKWebView', 'Apple Mail (iOS)'],
  ['Apple Mail', 'Apple Mail'],
  ['GmailImageProxy', 'Gmail image proxy'],
  ['YahooMailProxy', 'Yahoo Mail image proxy'],
  ['Chrome Mobile WebView', 'Android mail app (web view)'],
  ['Other', 'Unknown client'],
]);
const NO_VERSION = new Set(['Mobile Safari UI/WKWebView', 'Apple Mail', 'Chrome Mobile WebView']);

const SYSTEMS = new Map([
  ['Mac OS X', 'macOS'],
  ['Other', 'Unknown system'],
]);

/** The known name of the client called BROWSER by the parser ("" stays ""). */
export function clientName(browser) {
  if (!browser) return '';
  return CLIENTS.get(browser) || browser;
}

/** The client with its version where the version is the client's own. */
export function clientLabel(browser, version) {
  if (!browser) return '';
  return joined([clientName(browser), NO_VERSION.has(browser) ? '' : version]);
}

export function osName(os) {
  if (!os) return '';
  return SYSTEMS.get(os) || os;
}

export function osLabel(os, version) {
  return joined([osName(os), version]);
}

/** The name shown for a breakdown row of DIMENSION ("client", "os", ...). */
export function breakdownName(dimension, name) {
  if (dimension === 'client') return clientName(name);
  if (dimension === 'os') return osName(name);
  return name;
}
