// Event classes (human, proxy, machine, self), the rule that decided each, and the counts:
// total_views and unique_views count human and proxy only.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { UA, assertPixel, setCookies, startServer } from './harness.mjs';

let srv;
before(async () => {
  srv = await startServer({ campaigns: ['cls', 'uniq', 'anon', 'selfc', 'selfr'] });
});
after(async () => {
  await srv?.stop();
});

async function openOnce(campaign, email, headers, local) {
  const res = await srv.pixel({ campaign, email }, headers, local ? { localAddress: local } : {});
  assertPixel(res);
  const [ev] = await srv.events(campaign, '?limit=1');
  assert.equal(ev.recipient, email ?? '', 'the latest event is this open');
  return ev;
}

describe('classes', () => {
  test('a mail client (Thunderbird) is human, counted in the views', async () => {
    const ev = await openOnce('cls', 'h1', { 'User-Agent': UA.thunderbird });
    assert.equal(ev.class, 'human');
    assert.equal(ev.rule, 'default-human');
    assert.equal(ev.browser, 'Thunderbird');
    assert.equal(ev.os, 'Windows');
  });

  test('curl is machine (rule http-library)', async () => {
    const ev = await openOnce('cls', 'm1', { 'User-Agent': UA.curl });
    assert.equal(ev.class, 'machine');
    assert.equal(ev.rule, 'http-library');
  });

  // Issue #3: "Unknown agents are human"; a missing agent is no evidence of a machine.
  test('a request without User-Agent is human (rule default-human), kept as null', async () => {
    const ev = await openOnce('cls', 'm2', {});
    assert.equal(ev.user_agent, null);
    assert.equal(ev.class, 'human', `rule ${ev.rule}`);
    assert.equal(ev.rule, 'default-human');
    assert.equal(ev.browser, 'Other');
  });

  test("Gmail's image proxy is proxy, with via naming it", async () => {
    const ev = await openOnce('cls', 'p1', { 'User-Agent': UA.gmail });
    assert.equal(ev.class, 'proxy');
    assert.match(ev.via, /GoogleImageProxy/);
  });

  test('Purpose: prefetch is machine even from a mail client', async () => {
    const ev = await openOnce('cls', 'm3', { 'User-Agent': UA.thunderbird, Purpose: 'prefetch' });
    assert.equal(ev.class, 'machine');
    assert.match(ev.rule, /prefetch/);
    const ev2 = await openOnce('cls', 'm4', { 'User-Agent': UA.chrome, 'Sec-Purpose': 'prefetch;prerender' });
    assert.equal(ev2.class, 'machine');
  });

  test('by_class counts every class; total_views and unique_views only human and proxy', async () => {
    const c = await srv.campaign('cls');
    const evs = await srv.events('cls');
    const count = (k) => evs.filter((e) => e.class === k).length;
    for (const k of ['human', 'proxy', 'machine', 'self']) assert.equal(c.by_class[k], count(k), `by_class.${k}`);
    assert.equal(c.total_views, count('human') + count('proxy'));
    const counted = new Set(evs.filter((e) => e.class === 'human' || e.class === 'proxy').map((e) => e.recipient));
    assert.equal(c.unique_views, counted.size);
    const h1 = c.per_recipient.find((r) => r.recipient === 'h1');
    const m1 = c.per_recipient.find((r) => r.recipient === 'm1');
    assert.equal(h1.views, 1);
    assert.equal(m1?.views ?? 0, 0, 'a machine open is no view');
  });
});

describe('unique views', () => {
  test('count distinct recipients', async () => {
    const ua = { 'User-Agent': UA.thunderbird };
    for (const r of ['u1', 'u1', 'u1', 'u2', 'u2', 'u3']) assertPixel(await srv.pixel({ campaign: 'uniq', email: r }, ua));
    assertPixel(await srv.pixel({ campaign: 'uniq', email: 'u4' }, { 'User-Agent': UA.curl }));
    const c = await srv.campaign('uniq');
    assert.equal(c.total_views, 6);
    assert.equal(c.unique_views, 3);
    assert.equal(c.per_recipient.find((r) => r.recipient === 'u1').views, 3);
    const list = await srv.apiOk('GET', '/campaigns');
    const row = list.find((x) => x.id === 'uniq');
    assert.equal(row.total_views, 6);
    assert.equal(row.unique_views, 3);
    assert.ok(row.last_view_at, 'last_view_at set');
  });

  test('without recipient: distinct clients by visitor cookie, else IP and user agent', async () => {
    const ua = (s) => ({ 'User-Agent': `${UA.thunderbird} ${s}` });
    const v1 = 'a'.repeat(32);
    const v2 = 'b'.repeat(32);
    // Two cookies, each twice: two clients.
    for (const v of [v1, v1, v2, v2]) assertPixel(await srv.pixel({ campaign: 'anon' }, { ...ua('cookie'), Cookie: `spv=${v}` }));
    let c = await srv.campaign('anon');
    assert.equal(c.total_views, 4);
    assert.equal(c.unique_views, 2, 'two visitor cookies');
    // No cookie: same IP and agent twice is one client, another agent is another.
    assertPixel(await srv.pixel({ campaign: 'anon' }, ua('x')));
    assertPixel(await srv.pixel({ campaign: 'anon' }, ua('x')));
    assertPixel(await srv.pixel({ campaign: 'anon' }, ua('y')));
    c = await srv.campaign('anon');
    assert.equal(c.total_views, 7);
    assert.equal(c.unique_views, 4, 'IP+agent x, IP+agent y');
  });

  test('a client that keeps the visitor cookie it was given is one unique view', async () => {
    await srv.apiOk('POST', '/campaigns', { id: 'anon2' });
    const h = { 'User-Agent': UA.chrome };
    const first = await srv.pixel({ campaign: 'anon2' }, h);
    const spv = setCookies(first).spv;
    assert.match(spv, /^[0-9a-f]{32}$/);
    assertPixel(await srv.pixel({ campaign: 'anon2' }, { ...h, Cookie: `spv=${spv}` }));
    assertPixel(await srv.pixel({ campaign: 'anon2' }, { ...h, Cookie: `spv=${spv}` }));
    const c = await srv.campaign('anon2');
    assert.equal(c.total_views, 3);
    assert.equal(c.unique_views, 1, 'one browser, first without and then with the cookie it was given');
  });
});

describe('self-views', () => {
  let login;
  before(async () => {
    login = await srv.login();
  });

  test('login sets sp_session (HttpOnly, SameSite=Strict) and sp_self', async () => {
    assert.equal(login.res.status, 200, login.res.text);
    const lines = [].concat(login.res.headers['set-cookie'] || []);
    const session = lines.find((l) => l.startsWith('sp_session='));
    assert.ok(session, 'sp_session cookie');
    assert.match(session, /;\s*HttpOnly/i);
    assert.match(session, /;\s*SameSite=Strict/i);
    assert.ok(login.cookies.sp_session.length >= 20, 'a long random session');
    assert.ok(login.cookies.sp_self, 'sp_self cookie');
  });

  test('a pixel carrying sp_self is self (rule self-cookie), not a view', async () => {
    const c0 = await srv.campaign('selfc');
    const ev = await openOnce('selfc', 'me', { 'User-Agent': UA.chrome, Cookie: `sp_self=${login.cookies.sp_self}` });
    assert.equal(ev.class, 'self');
    assert.equal(ev.rule, 'self-cookie');
    const c1 = await srv.campaign('selfc');
    assert.equal(c1.total_views, c0.total_views);
    assert.equal(c1.unique_views, c0.unique_views);
    assert.equal(c1.by_class.self, c0.by_class.self + 1);
  });

  test('a forged or altered sp_self is not self', async () => {
    const real = login.cookies.sp_self;
    const dot = real.indexOf('.');
    const altered = dot > 0 ? `${real.slice(0, dot - 1)}${real[dot - 1] === 'A' ? 'B' : 'A'}${real.slice(dot)}` : `${real}x`;
    for (const v of ['1', 'yes', 'AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', altered, `${real}A`]) {
      const ev = await openOnce('selfc', 'forger', { 'User-Agent': UA.chrome, Cookie: `sp_self=${v}` });
      assert.equal(ev.class, 'human', `sp_self=${v}`);
    }
  });

  test("a Referer from the server's own origin is self (rule self-referer)", async () => {
    for (const ref of [`${srv.base}/`, `${srv.base}/campaigns/selfr`, srv.base]) {
      const ev = await openOnce('selfr', 'ref', { 'User-Agent': UA.chrome, Referer: ref });
      assert.equal(ev.class, 'self', ref);
      assert.equal(ev.rule, 'self-referer');
    }
    for (const ref of [`${srv.base}.evil.example/`, `http://127.0.0.1:${srv.port + 1}/`, 'https://mail.example.com/inbox', `http://evil.example/?${srv.base}/`]) {
      const ev = await openOnce('selfr', 'ref2', { 'User-Agent': UA.chrome, Referer: ref });
      assert.equal(ev.class, 'human', ref);
    }
    const c = await srv.campaign('selfr');
    assert.equal(c.by_class.self, 3);
    assert.equal(c.total_views, 4);
  });
});

describe('self-views by address (--self-ip-window)', () => {
  let s2;
  before(async () => {
    s2 = await startServer({ campaigns: ['sip'], flags: ['--self-ip-window', '5'] });
  });
  after(async () => {
    await s2?.stop();
  });

  async function open2(email, local) {
    const res = await s2.pixel({ campaign: 'sip', email }, { 'User-Agent': UA.thunderbird }, { localAddress: local });
    assertPixel(res);
    const [ev] = await s2.events('sip', '?limit=1');
    assert.equal(ev.recipient, email);
    return ev;
  }

  test('opens from the address that used the dashboard are self (rule self-ip); others are not', async () => {
    assert.equal((await open2('before', '127.0.0.1')).class, 'human', 'before any dashboard use');
    const l = await s2.login();
    assert.equal(l.res.status, 200);
    const ev = await open2('after', '127.0.0.1');
    assert.equal(ev.class, 'self');
    assert.equal(ev.rule, 'self-ip');
    const other = await open2('elsewhere', '127.0.0.2');
    assert.equal(other.ip, '127.0.0.2');
    assert.equal(other.class, 'human', 'another address is not the sender');
    const c = await s2.campaign('sip');
    assert.equal(c.total_views, 2);
    assert.equal(c.by_class.self, 1);
  });
});
