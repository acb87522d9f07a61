// Login on the open internet: a guesser slows only themselves (per address and per account,
// with back-off; the owner's browser is known by a cookie bound to the account), the
// password is checked off the request threads so the pixel never waits for a login, login
// takes same-origin JSON only, and a new password or a deleted user ends sessions and tokens.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { UA, assertPixel, request, run, setCookieLine, startServer } from './harness.mjs';

const WRONG = 'not the password';

/** Logs in as USER with PASSWORD from ADDRESS carrying COOKIE (may be undefined). */
function attempt(s, user, password, { address = '127.0.0.1', cookie, headers = {} } = {}) {
  return s.login(user, password, { localAddress: address, headers: { ...(cookie ? { Cookie: cookie } : {}), ...headers } });
}

describe('throttling: per address and per account, with back-off', () => {
  // One server; each test has its own accounts and addresses.
  let s;
  before(async () => {
    s = await startServer();
    for (const user of ['alice', 'bob', 'carol', 'mallory']) {
      const r = await run(['user', 'add', user, '--password-stdin', '--data', s.dataDir], { input: `${user} password\n` });
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => {
    await s?.stop();
  });

  test('a guesser at one address does not lock the user out elsewhere', async () => {
    const statuses = [];
    for (let i = 0; i < 8; i++) statuses.push((await attempt(s, 'alice', `${WRONG} ${i}`, { address: '127.0.0.1' })).res.status);
    assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401]);
    assert.ok(statuses.slice(5).every((x) => x === 429), `the guesser waits: ${statuses}`);
    const r = await attempt(s, 'alice', 'alice password', { address: '127.0.0.2' });
    assert.equal(r.res.status, 200, 'the user, from another address and a new browser, logs in');
  });

  test('one user guessing another\'s password gets 429 after 5 guesses, logging in between or not', async () => {
    const own = await attempt(s, 'mallory', 'mallory password', { address: '127.0.0.3' });
    assert.equal(own.res.status, 200);
    let wrong = 0;
    let waits = 0;
    for (let i = 0; i < 10; i++) {
      const g = await attempt(s, 'bob', `${WRONG} ${i}`, { address: '127.0.0.3', cookie: own.cookieHeader });
      if (g.res.status === 401) wrong++;
      else if (g.res.status === 429) waits++;
      else assert.fail(`guess ${i}: ${g.res.status}`);
      if (i % 2) continue;
      const ok = await attempt(s, 'mallory', 'mallory password', { address: '127.0.0.3', cookie: own.cookieHeader });
      assert.equal(ok.res.status, 200, 'her own logins still work');
    }
    // Five free guesses; then a minute's wait, and longer (one more only if the test stalled
    // that long).
    assert.ok(wrong >= 5 && wrong <= 6, `${wrong} guesses checked`);
    assert.ok(waits >= 4, `${waits} answers 429`);
  });

  test('guesses from many addresses close the account to new browsers, never to the owner\'s', async () => {
    const owner = await attempt(s, 'carol', 'carol password', { address: '127.0.0.7' });
    assert.equal(owner.res.status, 200);
    const line = setCookieLine(owner.res, 'sp_device');
    assert.match(line, /Path=\/api\/v1\/login/);
    assert.match(line, /HttpOnly/);
    assert.match(line, /SameSite=Strict/);
    const mallory = await attempt(s, 'mallory', 'mallory password', { address: '127.0.0.8' });
    for (const address of ['127.0.0.4', '127.0.0.5', '127.0.0.6']) {
      for (let i = 0; i < 5; i++) await attempt(s, 'carol', `${WRONG} ${i}`, { address });
    }
    const stranger = await attempt(s, 'carol', 'carol password', { address: '127.0.0.9' });
    assert.equal(stranger.res.status, 429, 'a browser the account does not know waits');
    assert.ok(Number(stranger.res.headers['retry-after']) > 0);
    const others = {
      'the self-view cookie alone': `sp_self=${owner.cookies.sp_self}`,
      'another user\'s known-browser cookie': `sp_device=${mallory.cookies.sp_device}`,
      'a forged known-browser cookie': `sp_device=${owner.cookies.sp_device.slice(0, -2)}xx`,
    };
    for (const [what, cookie] of Object.entries(others)) {
      const r = await attempt(s, 'carol', 'carol password', { address: '127.0.0.9', cookie });
      assert.equal(r.res.status, 429, what);
    }
    const back = await attempt(s, 'carol', 'carol password', { address: '127.0.0.9', cookie: `sp_device=${owner.cookies.sp_device}` });
    assert.equal(back.res.status, 200, 'the owner\'s browser logs in');
  });
});

describe('passwords are checked off the request threads', () => {
  test('the pixel answers while failed logins flood the server; a full pool answers 503', async () => {
    const s = await startServer({ campaigns: ['flood'], flags: ['--threads', '1'] });
    const statuses = {};
    let retryAfter = null;
    let stop = false;
    const flood = async (n) => {
      while (!stop) {
        const a = () => 1 + Math.floor(Math.random() * 250);
        const r = await request(`${s.base}/api/v1/login`, {
          method: 'POST', localAddress: `127.${a()}.${a()}.${n}`, body: { user: `u${a()}`, password: WRONG },
        }).catch(() => null);
        if (!r) continue;
        statuses[r.status] = (statuses[r.status] || 0) + 1;
        if (r.status === 503) retryAfter = r.headers['retry-after'];
      }
    };
    try {
      const flooders = Array.from({ length: 24 }, (_, i) => flood(i + 1));
      await new Promise((r) => setTimeout(r, 500));
      const times = [];
      for (let i = 0; i < 15; i++) {
        const t0 = process.hrtime.bigint();
        assertPixel(await s.pixel({ campaign: 'flood', email: `r${i}` }, { 'User-Agent': UA.thunderbird }));
        times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      stop = true;
      await Promise.all(flooders);
      times.sort((a, b) => a - b);
      // With the hashes on the request thread the pixel waited behind them (seconds).
      assert.ok(times[7] < 500, `median pixel answer ${times[7].toFixed(1)} ms during the flood (${times.map((t) => t.toFixed(0))})`);
      assert.ok(statuses[401] > 0, `some logins were checked: ${JSON.stringify(statuses)}`);
      assert.ok(statuses[503] > 0, `a full pool answers 503: ${JSON.stringify(statuses)}`);
      assert.equal(retryAfter, '1');
      await s.indexed();
      assert.equal((await s.campaign('flood')).total_views, 15);
    } finally {
      stop = true;
      await s.stop();
    }
  });
});

describe('login takes same-origin JSON only', () => {
  test('other content types are 415, other origins 403; the dashboard\'s own request works', async () => {
    const s = await startServer();
    try {
      const body = JSON.stringify({ user: s.user, password: s.password });
      const post = (headers) => request(`${s.base}/api/v1/login`, { method: 'POST', body, headers });
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonp', '']) {
        const r = await post({ 'Content-Type': type });
        assert.equal(r.status, 415, `Content-Type: ${type}`);
        assert.equal(r.headers['set-cookie'], undefined);
      }
      const bad = [
        { Origin: 'http://evil.example' },
        { Origin: 'null' },
        { Origin: `http://127.0.0.1:${s.port + 1}` },
        { 'Sec-Fetch-Site': 'cross-site' },
        { 'Sec-Fetch-Site': 'same-site' },
        { Origin: s.base, 'Sec-Fetch-Site': 'cross-site' },
      ];
      for (const h of bad) {
        const r = await post({ 'Content-Type': 'application/json', ...h });
        assert.equal(r.status, 403, JSON.stringify(h));
        assert.equal(r.headers['set-cookie'], undefined);
      }
      const good = [
        { 'Content-Type': 'application/json', Origin: s.base, 'Sec-Fetch-Site': 'same-origin' },
        { 'Content-Type': 'Application/JSON; charset=utf-8' },
        { 'Content-Type': 'application/json', 'Sec-Fetch-Site': 'none' },
      ];
      for (const h of good) assert.equal((await post(h)).status, 200, JSON.stringify(h));
    } finally {
      await s.stop();
    }
  });
});

describe('a new password or a deleted user ends sessions and tokens', () => {
  test('user passwd and user delete, on a running server', async () => {
    const s = await startServer();
    try {
      const l = await s.login();
      assert.equal(l.res.status, 200);
      const owned = (await run(['token', 'create', 'mine', '--user', s.user, '--data', s.dataDir])).stdout.trim();
      const me = (headers) => request(`${s.base}/api/v1/me`, { headers }).then((r) => r.status);
      const session = { Cookie: l.cookieHeader };
      const bearer = (t) => ({ Authorization: `Bearer ${t}` });
      assert.equal(await me(session), 200);
      assert.equal(await me(bearer(owned)), 200);

      const p = await run(['user', 'passwd', s.user, '--password-stdin', '--data', s.dataDir], { input: 'a brand new password\n' });
      assert.equal(p.code, 0, p.stderr);
      assert.equal(await me(session), 401, 'the session ends with the old password');
      assert.equal(await me(bearer(owned)), 401, 'so does the token the user owns');
      assert.equal(await me(bearer(s.token)), 200, 'a token of nobody\'s stays');
      assert.equal((await s.login(s.user, s.password)).res.status, 401);
      const again = await s.login(s.user, 'a brand new password');
      assert.equal(again.res.status, 200);

      const d = await run(['user', 'delete', s.user, '--data', s.dataDir]);
      assert.equal(d.code, 0, d.stderr);
      assert.equal(await me({ Cookie: again.cookieHeader }), 401, 'deleting the user ends its sessions');
      assert.equal((await s.login(s.user, 'a brand new password')).res.status, 401);
    } finally {
      await s.stop();
    }
  });
});

// The pool's threads end with the server: a login parked at shutdown still gets its answer.
test('a login in flight when the server stops is answered', async () => {
  const s = await startServer();
  const pending = attempt(s, s.user, s.password);
  await new Promise((r) => setTimeout(r, 20));
  s.child.kill('SIGTERM');
  const r = await pending.catch((e) => ({ error: e }));
  assert.ok(r.error || [200, 503].includes(r.res.status), `answered ${r.res?.status}`);
  await s.stop();
  assert.equal(s.exited().code, 0);
});
