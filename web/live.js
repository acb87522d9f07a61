// live: Server-Sent Events with a visible status; reconnects, and tells the view when it
// may have missed events so that it can catch up.
// SPDX-License-Identifier: MIT

import { h } from './dom.js';

/**
 * Subscribes to URL. onEvent(event) for each open or click; onResync() after a reconnect.
 * Returns {el: a status element for the page, close()}.
 */
export function subscribe(url, { onEvent, onResync }) {
  const dot = h('span', { class: 'live-dot', 'aria-hidden': 'true' });
  const label = h('span', {}, 'Connecting…');
  const el = h('p', { class: 'live-status', 'data-state': 'connecting', title: 'Live updates' }, dot, ' ', label);
  let es = null;
  let closed = false;
  let lost = false;
  let retryTimer = null;

  const state = (s, text) => {
    el.dataset.state = s;
    label.textContent = text;
  };

  const onData = (e) => {
    // The stream's "open" event name is also EventSource's own connection event (no data).
    if (typeof e.data !== 'string') return;
    let ev;
    try {
      ev = JSON.parse(e.data);
    } catch {
      return;
    }
    if (ev && typeof ev === 'object') onEvent(ev);
  };

  const connect = () => {
    if (closed) return;
    es = new EventSource(url, { withCredentials: true });
    es.addEventListener('open', (e) => {
      if (typeof e.data === 'string') return onData(e);
      state('live', 'Live');
      if (lost && onResync) onResync();
      lost = false;
    });
    es.addEventListener('click', onData);
    es.addEventListener('message', onData);
    // The server dropped events for this slow subscriber: fetch what was missed.
    es.addEventListener('overflow', () => onResync && onResync());
    es.addEventListener('error', () => {
      lost = true;
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (an HTTP error): try again ourselves, slowly.
        state('down', 'Live updates paused, retrying…');
        es.close();
        retryTimer = setTimeout(connect, 5000);
      } else {
        state('connecting', 'Reconnecting…');
      }
    });
  };
  connect();

  return {
    el,
    close() {
      closed = true;
      clearTimeout(retryTimer);
      if (es) es.close();
    },
  };
}
