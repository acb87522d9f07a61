// harness: starts the real spypixel binary on a free loopback port with a fresh data folder,
// a user and an API token, speaks HTTP to it, and launches Debian's Chromium for the tests.
// Reusable by end-to-end HTTP tests: only startServer() and request() need no browser.
// SPDX-License-Identifier: MIT

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

// One set of process and HTTP helpers for both suites: the end-to-end harness's.
import { BIN, ROOT, freePort, request, run } from '../e2e/harness.mjs';

export { BIN, ROOT, freePort, request, run };
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts `spypixel serve` on a free port with a fresh data folder, after creating the user
 * (password on stdin) and an API token. Returns the server handle; call stop() at the end.
 * ARGS are more serve flags; GEOIP keeps the default GeoIP database; ENV is added to the
 * server's environment.
 */
export async function startServer({ user = 'admin', password = 'correct horse battery staple', args = [], geoip = false, env = {} } = {}) {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'spypixel-test-'));
  const added = await run(['user', 'add', user, '--password-stdin', '--data', dataDir], { input: `${password}\n` });
  if (added.code !== 0) throw new Error(`user add failed (${added.code}): ${added.stderr}`);
  const tok = await run(['token', 'create', 'browser-tests', '--data', dataDir]);
  const token = tok.stdout.trim().split('\n').filter(Boolean).pop() || '';
  if (tok.code !== 0 || !token) throw new Error(`token create failed (${tok.code}): ${tok.stderr}`);

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir, ...(geoip ? [] : ['--no-geoip']), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env },
  });
  let log = '';
  const keep = (d) => {
    log += d;
    if (log.length > 200000) log = log.slice(-100000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  const exitedP = new Promise((resolve) => child.on('exit', (code, signal) => {
    exited = { code, signal };
    resolve(exited);
  }));

  let ready = false;
  for (let i = 0; i < 100 && !exited; i++) {
    try {
      const r = await request(`${base}/healthz`, { timeoutMs: 1000 });
      if (r.status === 200) {
        ready = true;
        break;
      }
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  if (!ready) {
    child.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
    throw new Error(`spypixel did not become healthy on ${base}${exited ? ` (exited ${JSON.stringify(exited)})` : ''}\n${log}`);
  }

  const srv = {
    base, port, dataDir, user, password, token,
    logs: () => log,
    /** Calls the API with the bearer token: api('POST', '/campaigns', {id}). */
    async api(method, apiPath, body) {
      const r = await request(`${base}/api/v1${apiPath}`, {
        method, body, headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
      });
      if (r.status >= 400) throw new Error(`${method} ${apiPath}: ${r.status} ${r.text}`);
      return r.status === 204 || !r.text ? null : r.json();
    },
    /** A signed pixel URL (absolute) for CAMPAIGN and RECIPIENT. */
    async pixel(campaign, recipient = '') {
      return (await srv.api('POST', '/pixels', { campaign, recipient })).url;
    },
    /** Fetches URL as a mail client would, from LOCAL (127.0.0.x), with HEADERS. */
    async open(url, headers = {}, local = '127.0.0.2') {
      const r = await request(url, { headers, localAddress: local });
      if (r.status !== 200) throw new Error(`pixel ${url}: ${r.status}`);
      return r;
    },
    async events(campaign) {
      return srv.api('GET', `/campaigns/${encodeURIComponent(campaign)}/events?limit=1000`);
    },
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10000);
        await exitedP;
        clearTimeout(t);
      }
      await rm(dataDir, { recursive: true, force: true });
      return exited;
    },
  };
  return srv;
}

/** Launches Debian's Chromium through playwright-core (fresh profile each time). */
export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30000 });
}

/**
 * A logged-out page on SRV that records dialogs, page errors and console errors (CSP
 * violations show there). Dialogs are dismissed and recorded, never left open.
 */
export async function newPage(browser, srv, { viewport = { width: 1280, height: 900 }, colorScheme = 'light', clipboard = false, storageState } = {}) {
  const context = await browser.newContext({ viewport, colorScheme, acceptDownloads: true, baseURL: srv.base, storageState });
  if (clipboard) await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: srv.base });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  const seen = { dialogs: [], errors: [], console: [], requests: [] };
  page.on('dialog', (d) => {
    seen.dialogs.push(`${d.type()}: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => seen.errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') seen.console.push(m.text());
  });
  page.on('request', (r) => seen.requests.push(r.url()));
  return { context, page, seen };
}

/**
 * Logs in once and returns the browser state (the session cookies), for tests that need a
 * logged-in page but do not test the login: newPage(browser, srv, {storageState}).
 */
export async function session(browser, srv) {
  const { context, page } = await newPage(browser, srv);
  await login(page, srv);
  const state = await context.storageState();
  await context.close();
  return state;
}

/** Logs in through the form. */
export async function login(page, srv, { user = srv.user, password = srv.password } = {}) {
  await page.goto('/');
  await page.fill('#login-user', user);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
  await page.waitForSelector('#nav:not([hidden])');
}
