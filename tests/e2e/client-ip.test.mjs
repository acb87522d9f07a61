// The client address: the peer, X-Forwarded-For / Forwarded only from trusted proxies,
// IP anonymisation, and GeoIP with the default database.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import http from 'node:http';
import net from 'node:net';

import { UA, assertPixel, freePort, prepareData, request, setCookieLine, setCookies, startRaw, startServer } from './harness.mjs';

const servers = [];
after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

async function server(flags, opts = {}) {
  const s = await startServer({ campaigns: ['ip'], flags, ...opts });
  servers.push(s);
  return s;
}

let n = 0;
async function openFrom(s, headers) {
  const email = `ip${++n}`;
  const res = await s.pixel({ campaign: 'ip', email }, { 'User-Agent': UA.thunderbird, ...headers });
  assertPixel(res);
  const [ev] = await s.events('ip', '?limit=1');
  assert.equal(ev.recipient, email);
  return ev;
}

describe('without --trusted-proxy', () => {
  test('X-Forwarded-For and Forwarded are ignored: the peer is the client', async () => {
    const s = await server([]);
    assert.equal((await openFrom(s, { 'X-Forwarded-For': '203.0.113.7, 198.51.100.2' })).ip, '127.0.0.1');
    assert.equal((await openFrom(s, { Forwarded: 'for=203.0.113.7' })).ip, '127.0.0.1');
    assert.equal((await openFrom(s, { 'X-Forwarded-For': '8.8.8.8' })).ip, '127.0.0.1');
    const ev = await openFrom(s, {});
    assert.equal(ev.ip, '127.0.0.1');
    assert.equal(ev.headers['X-Forwarded-For'] ?? ev.headers['x-forwarded-for'], undefined);
  });
});

describe('--trusted-proxy 127.0.0.1/32 with the default GeoIP database', () => {
  let s;
  test('starts', async () => {
    s = await server(['--trusted-proxy', '127.0.0.1/32'], { geoip: true });
  });

  test('X-Forwarded-For: the rightmost untrusted address', async () => {
    assert.equal((await openFrom(s, { 'X-Forwarded-For': '203.0.113.7, 198.51.100.2' })).ip, '198.51.100.2');
    assert.equal((await openFrom(s, { 'X-Forwarded-For': '198.51.100.9' })).ip, '198.51.100.9');
    // A trusted hop on the right is skipped.
    assert.equal((await openFrom(s, { 'X-Forwarded-For': '203.0.113.7, 127.0.0.1' })).ip, '203.0.113.7');
  });

  test('entries the client wrote first cannot push the hop our proxy added out of the walk', async () => {
    const lies = (prefix) => Array(70).fill(`${prefix}203.0.113.66`).join(', ');
    assert.equal((await openFrom(s, { 'X-Forwarded-For': `${lies('')}, 198.51.100.3` })).ip, '198.51.100.3');
    assert.equal((await openFrom(s, { Forwarded: `${lies('for=')}, for=198.51.100.4` })).ip, '198.51.100.4');
  });

  test('each open reads back its own agent and headers, in the order sent, whatever the others sent', async () => {
    // The store keeps a header set once per client and each request's addresses, cookies and
    // referrer in its row: what comes back must be each request's own, byte for byte.
    const sent = [];
    for (let i = 0; i < 6; i++) {
      const headers = {
        'User-Agent': i % 2 ? UA.thunderbird : 'Agent "q" \\ @ {x}:,',
        'X-Forwarded-For': `198.51.100.${40 + i}`,
        Accept: 'image/*',
        Cookie: `k=v${i}; theme="@"`,
        Forwarded: `for=198.51.100.${40 + i}`,
        'X-Odd': '@"}{',
        Referer: `https://mail.example/${i}/@`,
      };
      const email = `interned${i}`;
      assertPixel(await s.pixel({ campaign: 'ip', email }, headers));
      sent.push({ email, headers });
    }
    const evs = await s.events('ip', '?limit=1000');
    const csv = await s.api('GET', '/campaigns/ip/events.csv');
    assert.equal(csv.status, 200);
    for (const { email, headers } of sent) {
      const ev = evs.find((e) => e.recipient === email);
      assert.equal(ev.user_agent, headers['User-Agent']);
      for (const [k, v] of Object.entries(headers)) assert.equal(ev.headers[k], v, k);
      assert.deepEqual(Object.keys(ev.headers).filter((k) => k in headers), Object.keys(headers));
      assert.ok(csv.text.includes(JSON.stringify(ev.headers).replaceAll('"', '""')), email);
    }
  });

  test('thousands of agents and header sets, again after others took their places, and longer than any cache keeps: each open reads back its own', async () => {
    // The ingest's reader names each agent and header set it sees by a token, which the writer's
    // cache takes for the text: 3,000 agents overflow the reader's 1,024 slots and the writer's
    // 256 (texts share slots, lose them, come back under new tokens), and agents past 2,048
    // bytes get no token at all. Any mix-up would show as another open's agent or headers.
    const opens = [];
    const long = (i) => `Long/${i} ${'x'.repeat(2100 + (i % 7))}`;
    for (let i = 0; i < 3000; i++) opens.push({ ua: i % 100 === 7 ? long(i) : `Agent/${i} (stress ${i % 13})`, set: i % 37 });
    for (let i = 0; i < 400; i++) opens.push({ ua: opens[i * 7].ua, set: opens[i * 7].set }); // back after they were pushed out
    const sent = opens.map((o, i) => ({
      email: `stress${i}`,
      headers: { 'User-Agent': o.ua, 'X-Forwarded-For': `198.51.100.${i % 200}`, [`X-Set-${o.set}`]: `v${o.set}`, Accept: 'image/*' },
    }));
    for (let i = 0; i < sent.length; i += 50) {
      const part = sent.slice(i, i + 50);
      for (const r of await Promise.all(part.map(({ email, headers }) => s.pixel({ campaign: 'ip', email }, headers)))) assertPixel(r);
    }
    const evs = (await s.events('ip', '?limit=100000')).filter((e) => e.recipient.startsWith('stress'));
    assert.equal(evs.length, sent.length);
    const byEmail = new Map(evs.map((e) => [e.recipient, e]));
    for (const { email, headers } of sent) {
      const ev = byEmail.get(email);
      assert.ok(ev, email);
      assert.equal(ev.user_agent, headers['User-Agent'], email);
      for (const [k, v] of Object.entries(headers)) assert.equal(ev.headers[k], v, `${email} ${k}`);
      assert.equal(Object.keys(ev.headers).filter((k) => k.startsWith('X-Set-')).length, 1, email);
    }
  });

  test('Forwarded: for="[2001:db8::1]:4711" and for=IPv4', async () => {
    assert.equal((await openFrom(s, { Forwarded: 'for="[2001:db8::1]:4711"' })).ip, '2001:db8::1');
    assert.equal((await openFrom(s, { Forwarded: 'for=192.0.2.60;proto=http;by=203.0.113.43' })).ip, '192.0.2.60');
    assert.equal((await openFrom(s, { Forwarded: 'for=192.0.2.43, for=198.51.100.17' })).ip, '198.51.100.17');
  });

  test('one keep-alive connection from the proxy carries many clients: each gets its own visitor cookie and scheme', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const get = (headers) => s.pixel({ campaign: 'ip', email: `proxied${++n}` }, { 'User-Agent': UA.thunderbird, ...headers }, { agent });
      const x1 = await get({ 'X-Forwarded-For': '198.51.100.20' });
      const y1 = await get({ 'X-Forwarded-For': '198.51.100.21' });
      const x2 = await get({ 'X-Forwarded-For': '198.51.100.20' });
      const xTls = await get({ 'X-Forwarded-For': '198.51.100.20', 'X-Forwarded-Proto': 'https' });
      const x3 = await get({ 'X-Forwarded-For': '198.51.100.20' });
      for (const r of [x1, y1, x2, xTls, x3]) assertPixel(r);
      const spv = (r) => setCookies(r).spv;
      assert.notEqual(spv(y1), spv(x1), 'another client behind the proxy');
      assert.equal(spv(x2), spv(x1));
      assert.equal(spv(xTls), spv(x1), 'the same client over TLS');
      assert.match(setCookieLine(xTls, 'spv'), /; Secure; SameSite=None/);
      assert.match(setCookieLine(x3, 'spv'), /SameSite=Lax/);
      assert.doesNotMatch(setCookieLine(x3, 'spv'), /Secure/);
    } finally {
      agent.destroy();
    }
  });

  test('garbage in X-Forwarded-For keeps a sane address', async () => {
    const ev = await openFrom(s, { 'X-Forwarded-For': 'unknown, <script>' });
    assert.ok(ev.ip === '127.0.0.1' || /^[0-9a-f.:]+$/i.test(ev.ip), ev.ip);
    assert.ok(!ev.ip.includes('<'));
  });

  test('GeoIP: 8.8.8.8 is in the US; loopback is labelled loopback', async () => {
    const us = await openFrom(s, { 'X-Forwarded-For': '8.8.8.8' });
    assert.equal(us.ip, '8.8.8.8');
    assert.equal(us.country, 'US');
    const lo = await openFrom(s, {});
    assert.equal(lo.ip, '127.0.0.1');
    assert.equal(lo.geo_label, 'loopback');
    assert.ok(!lo.country, 'no country for loopback');
  });
});

describe('several trusted ranges', () => {
  test('--trusted-proxy 127.0.0.0/8 --trusted-proxy 198.51.100.0/24: the client behind both proxies', async () => {
    const s = await server(['--trusted-proxy', '127.0.0.0/8', '--trusted-proxy', '198.51.100.0/24']);
    assert.equal((await openFrom(s, { 'X-Forwarded-For': '203.0.113.7, 198.51.100.2' })).ip, '203.0.113.7');
  });
});

describe('--anonymize-ip', () => {
  let s;
  test('stores IPv4 /24 and IPv6 /48 only', async () => {
    s = await server(['--trusted-proxy', '127.0.0.1', '--anonymize-ip']);
    const v4 = await openFrom(s, { 'X-Forwarded-For': '203.0.113.7' });
    assert.equal(v4.ip, '203.0.113.0');
    const v6 = await openFrom(s, { Forwarded: 'for="[2001:db8:abcd:1234:5678::9]"' });
    assert.equal(v6.ip, '2001:db8:abcd::');
    const lo = await openFrom(s, {});
    assert.equal(lo.ip, '127.0.0.0');
  });

  test('the full address is not kept elsewhere in the event (raw headers)', async () => {
    const evs = await s.events('ip');
    const text = JSON.stringify(evs);
    assert.ok(!text.includes('203.0.113.7'), 'X-Forwarded-For with the full IPv4 address is stored in headers');
    assert.ok(!text.includes('5678::9'), 'Forwarded with the full IPv6 address is stored in headers');
  });
});

describe('IPv6', () => {
  test('--listen [::1]:PORT serves IPv6 clients; the peer ::1 is recorded as loopback', async (t) => {
    const can = await new Promise((resolve) => {
      const probe = net.createServer();
      probe.once('error', () => resolve(false));
      probe.listen(0, '::1', () => probe.close(() => resolve(true)));
    });
    if (!can) {
      t.skip('no IPv6 loopback here');
      return;
    }
    const data = await prepareData({ campaigns: ['ip'] });
    const port = await freePort();
    const s = await startRaw(['serve', '--listen', `[::1]:${port}`, '--data', data.dataDir, '--no-geoip'], { probe: `http://[::1]:${port}/healthz` });
    try {
      const res = await request(`http://[::1]:${port}/spy-pixel.gif?campaign=ip&email=six`, { headers: { 'User-Agent': UA.thunderbird } });
      assertPixel(res);
      const r = await request(`http://[::1]:${port}/api/v1/campaigns/ip/events?limit=1`, { headers: { Authorization: `Bearer ${data.token}` } });
      const [ev] = r.json();
      assert.equal(ev.recipient, 'six');
      assert.equal(ev.ip, '::1');
      assert.equal(ev.geo_label, 'loopback');
    } finally {
      await s.stop();
      servers.push({ stop: () => import('node:fs/promises').then((f) => f.rm(data.dataDir, { recursive: true, force: true })) });
    }
  });
});
