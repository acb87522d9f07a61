// harness: starts the real spypixel binary on a free loopback port with a fresh data folder,
// a user and an API token, speaks HTTP to it, and launches Debian's Chromium for the tests.
// Reusable by end-to-end HTTP tests: only startServer() and request() need no browser.
// SPDX-License-Identifier: MIT

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.resolve(ROOT, process.env.SPYPIXEL_BIN || 'build/spypixel');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1 (listen on 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Runs BIN ARGS to completion with INPUT on stdin; resolves {code, stdout, stderr}. */
export function run(args, { input = '', timeoutMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path.basename(BIN)} ${args.join(' ')}: timed out\n${stderr}`));
    }, timeoutMs);
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${BIN}: ${e.message} (build it with make, or set SPYPIXEL_BIN)`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/**
 * A plain HTTP request from node, with full control of the headers (a Cookie or a hostile
 * User-Agent) and of the local address: opens made from 127.0.0.2.. are not from the
 * dashboard's address (127.0.0.1), so the self-IP rule leaves them alone.
 * Resolves {status, headers, body (Buffer), text, json()}.
 */
export function request(url, { method = 'GET', headers = {}, body, localAddress, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const h = { ...headers };
    if (payload && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'application/json';
    if (payload) h['Content-Length'] = String(payload.length);
    const req = http.request({
      host: u.hostname, port: u.port, path: `${u.pathname}${u.search}`, method, headers: h,
      localAddress, agent: false, timeout: timeoutMs,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        const text = buf.toString('utf8');
        resolve({
          status: res.statusCode, headers: res.headers, body: buf, text,
          json() { return JSON.parse(text); },
        });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

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
export async function newPage(browser, srv, { viewport = { width: 1280, height: 900 }, colorScheme = 'light', clipboard = false } = {}) {
  const context = await browser.newContext({ viewport, colorScheme, acceptDownloads: true, baseURL: srv.base });
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

/** Logs in through the form. */
export async function login(page, srv, { user = srv.user, password = srv.password } = {}) {
  await page.goto('/');
  await page.fill('#login-user', user);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
  await page.waitForSelector('#nav:not([hidden])');
}
