// app: the dashboard's entry: session, login form, header and hash routes.
// SPDX-License-Identifier: MIT

import { api, ApiError, setBacklogHandler, setCsrf, setUnauthorizedHandler } from './api.js';
import { h, clear } from './dom.js';
import { renderCampaigns } from './campaigns.js';
import { renderCampaign } from './campaign.js';
import { renderCreator } from './creator.js';
import { renderRules } from './rules.js';
import { renderRecipient } from './recipient.js';
import { renderCompare } from './compare.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const whoName = document.getElementById('who-name');
const logoutButton = document.getElementById('logout');
const backlog = document.getElementById('backlog');

// Behind a burst the server answers reads before it has stored every open: say so.
setBacklogHandler((bytes) => {
  backlog.hidden = bytes <= 0;
  backlog.textContent = bytes <= 0 ? ''
    : `The newest opens are still being stored (${(bytes / 1048576).toFixed(1)} MB behind): the figures below will catch up.`;
});

let session = null; // {user, csrf}
let dispose = null; // the current view's cleanup (closes its live stream)

function setView(title, build) {
  if (dispose) dispose();
  dispose = null;
  clear(main);
  document.title = title ? `${title} · spypixel` : 'spypixel';
  dispose = build(main) || null;
}

function focusMain() {
  const h1 = main.querySelector('h1');
  (h1 || main).setAttribute('tabindex', '-1');
  (h1 || main).focus({ preventScroll: false });
}

// ---- Login -------------------------------------------------------------------------------

function showLogin(message) {
  session = null;
  setCsrf('');
  nav.hidden = true;
  who.hidden = true;
  setView('Log in', (root) => {
    const error = h('p', { class: 'form-error', id: 'login-error', role: 'alert' });
    const user = h('input', { id: 'login-user', name: 'user', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
    const pass = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const submit = h('button', { type: 'submit', id: 'login-submit' }, 'Log in');
    let lockTimer = null;

    const lock = (seconds) => {
      submit.disabled = true;
      let left = seconds;
      const tick = () => {
        error.textContent = `Too many failed attempts. Try again in ${left} s.`;
        if (left-- <= 0) {
          submit.disabled = false;
          error.textContent = 'You may try again now.';
          return;
        }
        lockTimer = setTimeout(tick, 1000);
      };
      tick();
    };

    const form = h('form', { class: 'login card', novalidate: true, 'aria-labelledby': 'login-title' },
      h('h1', { id: 'login-title' }, 'Log in'),
      h('p', { class: 'muted' }, 'The spypixel dashboard: your campaigns and their opens.'),
      h('div', { class: 'field' }, h('label', { for: 'login-user' }, 'User'), user),
      h('div', { class: 'field' }, h('label', { for: 'login-password' }, 'Password'), pass),
      error,
      h('div', { class: 'actions' }, submit));
    if (message) error.textContent = message;

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!user.value || !pass.value) {
        error.textContent = 'Enter your user name and password.';
        (user.value ? pass : user).focus();
        return;
      }
      submit.disabled = true;
      error.textContent = '';
      try {
        const me = await api('/login', { method: 'POST', body: { user: user.value, password: pass.value } });
        startApp(me);
      } catch (err) {
        pass.value = '';
        if (err instanceof ApiError && err.status === 429) {
          lock(err.retryAfter && err.retryAfter > 0 ? err.retryAfter : 30);
          return;
        }
        submit.disabled = false;
        error.textContent = err instanceof ApiError && err.status === 401
          ? 'Wrong user name or password.'
          : `Could not log in: ${err.message}`;
        pass.focus();
      }
    });
    root.append(h('section', { class: 'login-wrap' }, form));
    user.focus();
    return () => clearTimeout(lockTimer);
  });
}

// ---- The app -----------------------------------------------------------------------------

function startApp(me) {
  session = me;
  setCsrf(me.csrf);
  whoName.textContent = me.user;
  nav.hidden = false;
  who.hidden = false;
  route(true);
}

function markNav(name) {
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.route === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function parseHash() {
  const raw = location.hash.startsWith('#/') ? location.hash.slice(2) : 'campaigns';
  const [path, query = ''] = raw.split('?');
  const parts = path.split('/').map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { parts, query: new URLSearchParams(query) };
}

function route(initial) {
  if (!session) return;
  const { parts, query } = parseHash();
  if (parts[0] === 'create') {
    markNav('create');
    setView('Create a pixel', (root) => renderCreator(root, { campaign: query.get('campaign') || '' }));
  } else if (parts[0] === 'rules') {
    markNav('rules');
    setView('How opens are classed', (root) => renderRules(root, query.get('rule') || ''));
  } else if (parts[0] === 'campaigns' && parts[1]) {
    markNav('');
    setView(parts[1], (root) => renderCampaign(root, parts[1], query));
  } else if (parts[0] === 'recipients' && parts[1]) {
    markNav('');
    setView(parts[1], (root) => renderRecipient(root, parts[1]));
  } else if (parts[0] === 'compare') {
    markNav('compare');
    setView('Compare campaigns', (root) => renderCompare(root, query));
  } else {
    markNav('campaigns');
    setView('Campaigns', (root) => renderCampaigns(root, query));
  }
  if (!initial) focusMain();
}

window.addEventListener('hashchange', () => {
  // The skip link's "#main" is not a route.
  if (location.hash.startsWith('#/') || location.hash === '') route(false);
});

document.getElementById('skip').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});

logoutButton.addEventListener('click', async () => {
  logoutButton.disabled = true;
  try {
    await api('/logout', { method: 'POST' });
  } catch {
    // Logged out either way as far as this page is concerned.
  }
  logoutButton.disabled = false;
  showLogin('You are logged out.');
});

setUnauthorizedHandler(() => {
  if (session) showLogin('Your session has ended. Please log in again.');
});

async function boot() {
  try {
    startApp(await api('/me'));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      showLogin('');
      return;
    }
    clear(main).append(
      h('h1', {}, 'The dashboard cannot start'),
      h('p', { role: 'alert' }, err.message),
      h('button', { type: 'button', onclick: boot }, 'Try again'));
  }
}

boot();
