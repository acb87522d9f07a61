// Browser tests over HTTPS served by spypixel itself: Chromium (trusting only the throw-away
// certificate's key) logs in, gets Secure cookies and HSTS, sees the dashboard's campaigns,
// and a pixel it loads over HTTPS is recorded as the sender's own view.
// SPDX-License-Identifier: MIT

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { CHROMIUM, CHROMIUM_ARGS } from './harness.mjs';
import { tempDir } from '../e2e/harness.mjs';
import { httpsRequest, makeCA, startTls } from '../e2e/tls.mjs';

let dir;
let pki;
let srv;
let browser;

before(async () => {
  dir = await tempDir('spypixel-browser-tls-');
  pki = await makeCA(dir);
  const pair = await pki.cert('srv', 'localhost');
  srv = await startTls(pair);
  // Chromium trusts this certificate's key and nothing else of ours: a real check, not
  // an ignored error.
  const spki = await pki.spki(pair.cert);
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${spki}`], timeout: 30000 });
});

after(async () => {
  await browser?.close();
  await srv?.stop();
  if (srv) await rm(srv.dataDir, { recursive: true, force: true });
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function api(method, p, body) {
  const r = await httpsRequest(`${srv.https}/api/v1${p}`, { ca: pki.ca, method, body, headers: { Authorization: `Bearer ${srv.token}` } });
  assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${r.text}`);
  return r.text ? JSON.parse(r.text) : null;
}

test('login, dashboard and a pixel over HTTPS', async () => {
  const made = await api('POST', '/pixels', { campaign: 'tls-campaign', recipient: 'ann@example.com' });
  assert.ok(made.url.startsWith(`${srv.https}/o/`), made.url);

  const context = await browser.newContext({ baseURL: srv.https });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const first = await page.goto('/');
  assert.equal(first.status(), 200);
  assert.equal((await first.allHeaders())['strict-transport-security'], 'max-age=31536000');
  const tls = await first.securityDetails();
  assert.ok(['TLS 1.3', 'TLS 1.2'].includes(tls.protocol), tls.protocol);
  assert.equal(tls.subjectName, 'localhost');

  await page.fill('#login-user', srv.user);
  await page.fill('#login-password', srv.password);
  await page.click('#login-submit');
  await page.waitForSelector('#nav:not([hidden])');
  const cookies = await context.cookies(srv.https);
  assert.ok(cookies.length >= 2, JSON.stringify(cookies));
  for (const c of cookies) assert.equal(c.secure, true, `${c.name} is Secure`);

  await page.waitForSelector('#campaign-cards li[data-campaign="tls-campaign"]');

  // The sender's own browser loads the pixel: recorded, as a self view.
  const img = await page.goto(made.url);
  assert.equal(img.status(), 200);
  assert.equal((await img.allHeaders())['content-type'], 'image/gif');
  let events = [];
  for (let i = 0; i < 50 && !events.length; i++) {
    events = await api('GET', '/campaigns/tls-campaign/events');
    if (!events.length) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(events.length, 1);
  assert.equal(events[0].class, 'self');
  assert.deepEqual(errors, []);
  await context.close();
});
