// Browser tests: login, failed login, logout, session cookie, CSRF, rate limit, headers.
// SPDX-License-Identifier: MIT

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, login, request } from './harness.mjs';

let srv;
let browser;

before(async () => {
  srv = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

test('the dashboard is served by the binary with strict security headers', async () => {
  const r = await request(`${srv.base}/`);
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/html/);
  const csp = r.headers['content-security-policy'] || '';
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
  assert.ok(r.headers['referrer-policy'], 'a Referrer-Policy header');
  assert.match(r.text, /<script type="module" src="\/app.js"><\/script>/);
  assert.doesNotMatch(r.text, /<script>|\sstyle="/, 'no inline script or style in the page');
  for (const asset of ['/app.js', '/style.css', '/campaign.js', '/favicon.svg']) {
    const a = await request(`${srv.base}${asset}`);
    assert.equal(a.status, 200, asset);
  }
  const js = await request(`${srv.base}/app.js`);
  assert.match(js.headers['content-type'], /javascript/);
});

test('a wrong password shows an error and keeps the app closed', async () => {
  const { context, page, seen } = await newPage(browser, srv);
  await page.goto('/');
  await page.waitForSelector('#login-user');
  assert.equal(await page.isVisible('#nav'), false);
  await page.fill('#login-user', srv.user);
  await page.fill('#login-password', 'not the password');
  await page.click('#login-submit');
  await page.waitForFunction(() => document.querySelector('#login-error')?.textContent.includes('Wrong'));
  assert.equal(await page.isVisible('#nav'), false, 'the navigation stays hidden');
  assert.equal(await page.inputValue('#login-password'), '', 'the password field is cleared');
  const me = await page.evaluate(() => fetch('/api/v1/me').then((r) => r.status));
  assert.equal(me, 401);
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test('logging in opens the app with an HttpOnly SameSite=Strict session; logout closes it', async () => {
  const { context, page, seen } = await newPage(browser, srv);
  await login(page, srv);
  assert.equal(await page.textContent('#who-name'), srv.user);
  await page.waitForSelector('h1:text("Campaigns")');

  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'sp_session');
  assert.ok(session, 'sp_session cookie set');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  assert.ok(cookies.find((c) => c.name === 'sp_self'), 'the self-view cookie is set');
  assert.equal(await page.evaluate(() => document.cookie.includes('sp_session')), false, 'not readable from JS');

  // The session survives a reload.
  await page.reload();
  await page.waitForSelector('#nav:not([hidden])');

  await page.click('#logout');
  await page.waitForSelector('#login-user');
  assert.equal(await page.isVisible('#nav'), false);
  assert.equal(await page.evaluate(() => fetch('/api/v1/me').then((r) => r.status)), 401, 'the session is gone on the server');
  assert.deepEqual(seen.errors, []);
  assert.deepEqual(seen.console.filter((m) => /Content Security Policy|Refused/.test(m)), []);
  await context.close();
});

test('state-changing requests need the CSRF token', async () => {
  const { context, page } = await newPage(browser, srv);
  await login(page, srv);
  const result = await page.evaluate(async () => {
    const me = await (await fetch('/api/v1/me')).json();
    const post = (headers) => fetch('/api/v1/campaigns', {
      method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify({ id: 'csrf-check' }),
    }).then((r) => r.status);
    return {
      without: await post({}),
      wrong: await post({ 'X-CSRF-Token': 'nope' }),
      right: await post({ 'X-CSRF-Token': me.csrf }),
      logout: await fetch('/api/v1/logout', { method: 'POST' }).then((r) => r.status),
      stillIn: await fetch('/api/v1/me').then((r) => r.status),
    };
  });
  assert.equal(result.without, 403);
  assert.equal(result.wrong, 403);
  assert.ok(result.right === 201 || result.right === 200, `with the token: ${result.right}`);
  assert.equal(result.logout, 403, 'logout without the token is refused');
  assert.equal(result.stillIn, 200);
  await context.close();
});

// Last: after this, logins from 127.0.0.1 may be refused for a while.
test('repeated failures are rate-limited and the form says when to retry', async () => {
  let limited = null;
  for (let i = 0; i < 50 && !limited; i++) {
    const r = await request(`${srv.base}/api/v1/login`, { method: 'POST', body: { user: srv.user, password: `wrong-${i}` } });
    assert.ok(r.status === 401 || r.status === 429, `status ${r.status}`);
    if (r.status === 429) limited = r;
  }
  assert.ok(limited, 'a 429 after repeated failures');
  assert.ok(Number(limited.headers['retry-after']) > 0, 'with a Retry-After');
  assert.ok(limited.json().error);

  const { context, page } = await newPage(browser, srv);
  await page.goto('/');
  await page.fill('#login-user', srv.user);
  await page.fill('#login-password', 'wrong again');
  await page.click('#login-submit');
  await page.waitForFunction(() => /Too many failed attempts\. Try again in \d+ s/.test(document.querySelector('#login-error')?.textContent || ''));
  assert.equal(await page.isDisabled('#login-submit'), true, 'the button waits out the limit');
  await context.close();
});
