// The tracking endpoints: the seed's /spy-pixel.gif, opaque /o/ pixels and /c/ links,
// what gets recorded and what does not, the visitor cookie, /healthz and /metrics.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { GIF_LENGTH, NO_CACHE, UA, assertPixel, rawRequest, setCookieLine, setCookies, startServer } from './harness.mjs';

let srv;
before(async () => {
  srv = await startServer({ campaigns: ['news', 'other'] });
});
after(async () => {
  await srv?.stop();
});

const human = { 'User-Agent': UA.thunderbird };

async function eventCount(campaign) {
  return (await srv.events(campaign)).length;
}

describe('GET /spy-pixel.gif', () => {
  test('answers the 43-byte GIF with no-cache headers and records the open before answering', async () => {
    const m0 = await srv.metrics();
    const res = await srv.pixel({ campaign: 'news', email: 'alice@example.com' }, human);
    assertPixel(res);
    // No sleep: the answer is sent once the open is in the journal, and a read waits
    // until the store has indexed every open answered before it.
    const evs = await srv.events('news', '?limit=1');
    assert.equal(evs.length, 1);
    assert.equal(evs[0].recipient, 'alice@example.com');
    assert.equal(evs[0].kind, 'open');
    assert.equal(evs[0].user_agent, UA.thunderbird);
    assert.equal(evs[0].ip, '127.0.0.1');
    assert.match(evs[0].ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ts: UTC with milliseconds');
    assert.ok(Math.abs(Date.parse(evs[0].ts) - Date.now()) < 60000, 'ts is now');
    const m1 = await srv.metrics();
    assert.equal(m1.spypixel_opens_recorded_total - m0.spypixel_opens_recorded_total, 1);
  });

  test('every open is visible in the API as soon as its answer arrives (20 in a row, 10 at once)', async () => {
    for (let i = 0; i < 20; i++) {
      const res = await srv.pixel({ campaign: 'other', email: `seq${i}` }, human);
      assertPixel(res);
      const [latest] = await srv.events('other', '?limit=1');
      assert.equal(latest?.recipient, `seq${i}`, `open ${i} not yet visible right after its answer`);
    }
    const before = await eventCount('other');
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => srv.pixel({ campaign: 'other', email: `par${i}` }, human)));
    answers.forEach((r) => assertPixel(r));
    assert.equal(await eventCount('other'), before + 10);
  });

  test('invalid IDs get the GIF but nothing is recorded (opens_invalid counts them)', async () => {
    const long = 'a'.repeat(129);
    const cases = [
      'campaign=%3Cscript%3Ealert(1)%3C%2Fscript%3E&email=x',
      'campaign=news&email=%3Cscript%3E',
      'campaign=ne%20ws&email=x',
      'campaign=news&email=a%20b',
      `campaign=${long}&email=x`,
      `campaign=news&email=${long}`,
      'campaign=&email=x',
      'email=x',
      '',
      'campaign=news&email=x%0d%0aSet-Cookie:%20a=b',
      'campaign=n%C3%A9ws&email=x',
      'campaign=news/../other&email=x',
    ];
    for (const q of cases) {
      const before = await eventCount('news');
      const m0 = await srv.metrics();
      const res = await srv.pixel(q, human);
      assertPixel(res, `?${q}`);
      assert.equal(res.headers['set-cookie']?.some((c) => c.startsWith('a=')) ?? false, false, 'no header injection');
      const m1 = await srv.metrics();
      assert.equal(m1.spypixel_opens_recorded_total, m0.spypixel_opens_recorded_total, `?${q} must not be recorded`);
      assert.equal(await eventCount('news'), before, `?${q} must not be recorded`);
      assert.equal(m1.spypixel_opens_invalid_total - m0.spypixel_opens_invalid_total, 1, `?${q} counts in opens_invalid`);
    }
  });

  test('a percent-encoded NUL does not cut an ID down to a valid one', async () => {
    for (const q of ['campaign=news%00evil&email=nul1', 'campaign=news&email=nul2%00<script>', 'campaign=news%00&email=nul3']) {
      const before = await eventCount('news');
      assertPixel(await srv.pixel(q, human), `?${q}`);
      assert.equal(await eventCount('news'), before, `?${q} was recorded as an open of campaign "news"`);
    }
  });

  test('IDs of exactly 128 bytes with every allowed character are recorded', async () => {
    const id = `Az09-_@+.${'x'.repeat(119)}`;
    assert.equal(id.length, 128);
    const created = await srv.api('POST', '/campaigns', { id });
    assert.equal(created.status, 201, created.text);
    const res = await srv.pixel({ campaign: id, email: id }, human);
    assertPixel(res);
    const evs = await srv.events(id);
    assert.equal(evs.length, 1);
    assert.equal(evs[0].recipient, id);
    assert.equal(evs[0].campaign ?? id, id);
  });

  test('an unknown campaign gets the GIF, is kept apart and listed, not created', async () => {
    const m0 = await srv.metrics();
    const res = await srv.pixel({ campaign: 'no-such-campaign', email: 'bob' }, human);
    assertPixel(res);
    await srv.indexed(); // the writer finds out that the campaign does not exist
    const m1 = await srv.metrics();
    assert.equal(m1.spypixel_opens_unknown_campaign_total - m0.spypixel_opens_unknown_campaign_total, 1);
    assert.equal(m1.spypixel_opens_recorded_total, m0.spypixel_opens_recorded_total);
    const r = await srv.api('GET', '/campaigns/no-such-campaign');
    assert.equal(r.status, 404);
    const list = await srv.apiOk('GET', '/campaigns');
    assert.ok(!list.some((c) => c.id === 'no-such-campaign'));
    const unknown = await srv.apiOk('GET', '/unknown-campaigns');
    assert.equal(unknown.find((u) => u.id === 'no-such-campaign')?.opens, 1, JSON.stringify(unknown));
  });

  test('email is optional: missing or empty records an open without recipient', async () => {
    const before = await eventCount('news');
    assertPixel(await srv.pixel({ campaign: 'news' }, human));
    assertPixel(await srv.pixel('campaign=news&email=', human));
    const evs = await srv.events('news', '?limit=2');
    assert.equal(await eventCount('news'), before + 2);
    for (const e of evs) assert.ok(e.recipient === '' || e.recipient === null, `recipient ${JSON.stringify(e.recipient)}`);
  });

  test('HEAD gets the image headers but records nothing', async () => {
    const before = await eventCount('news');
    const m0 = await srv.metrics();
    const res = await srv.pixel({ campaign: 'news', email: 'head-check' }, human, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'image/gif');
    assert.equal(res.headers['cache-control'], NO_CACHE);
    assert.equal(res.body.length, 0);
    const m1 = await srv.metrics();
    assert.equal(await eventCount('news'), before);
    assert.equal(m1.spypixel_opens_recorded_total, m0.spypixel_opens_recorded_total);
  });

  test('sets a visitor cookie spv=<32 hex> when the request has none, and keeps a valid one', async () => {
    const first = await srv.pixel({ campaign: 'news', email: 'cookie-1' }, human);
    assertPixel(first);
    const line = setCookieLine(first, 'spv');
    assert.ok(line, 'Set-Cookie spv');
    const spv = setCookies(first).spv;
    assert.match(spv, /^[0-9a-f]{32}$/);
    assert.match(line, /HttpOnly/i);
    assert.match(line, /Path=\//);

    const second = await srv.pixel({ campaign: 'news', email: 'cookie-2' }, { ...human, Cookie: `spv=${spv}` });
    assertPixel(second);
    assert.equal(setCookieLine(second, 'spv'), undefined, 'no new cookie when a valid one came');
    const [ev] = await srv.events('news', '?limit=1');
    assert.equal(ev.recipient, 'cookie-2');
    assert.equal(ev.cookies.spv, spv);
    assert.equal(ev.visitor ?? spv, spv);

    const forged = await srv.pixel({ campaign: 'news', email: 'cookie-3' }, { ...human, Cookie: 'spv=not-hex"<x>' });
    assertPixel(forged);
    assert.match(setCookies(forged).spv ?? '', /^[0-9a-f]{32}$/, 'a malformed visitor cookie is replaced');
  });

  test('on one keep-alive connection, each client gets its own visitor cookie (the answer kept per connection follows the agent and the scheme)', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const get = (email, headers) => srv.pixel({ campaign: 'news', email }, headers, { agent });
      const a1 = await get('conn-1', { 'User-Agent': UA.chrome });
      const a2 = await get('conn-2', { 'User-Agent': UA.chrome });
      const b1 = await get('conn-3', { 'User-Agent': UA.thunderbird });
      const a3 = await get('conn-4', { 'User-Agent': UA.chrome });
      const viaTls = await get('conn-5', { 'User-Agent': UA.chrome, 'X-Forwarded-Proto': 'https' });
      for (const r of [a1, a2, b1, a3, viaTls]) assertPixel(r);
      const spv = (r) => setCookies(r).spv;
      assert.match(spv(a1), /^[0-9a-f]{32}$/);
      assert.equal(spv(a2), spv(a1), 'same address and agent: same visitor');
      assert.match(spv(b1), /^[0-9a-f]{32}$/);
      assert.notEqual(spv(b1), spv(a1), 'another agent on the same connection is another visitor');
      assert.equal(spv(a3), spv(a1));
      assert.doesNotMatch(setCookieLine(a3, 'spv'), /Secure/, 'plain HTTP: no Secure');
      // The server trusts no proxy here, so the scheme stays plain: the same answer.
      assert.equal(setCookieLine(viaTls, 'spv'), setCookieLine(a1, 'spv'));
    } finally {
      agent.destroy();
    }
  });

  test('on new connections, each client gets its own visitor cookie and again the same one (answers kept by the request thread)', async () => {
    // More clients than a request thread keeps answers for (16), each twice, every request on
    // a connection of its own.
    const agents = Array.from({ length: 20 }, (_, i) => `${UA.chrome} client/${i}`);
    const cookie = async (ua, email) => {
      const res = await srv.pixel({ campaign: 'news', email }, { 'User-Agent': ua, Connection: 'close' });
      assertPixel(res);
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
      assert.equal(res.headers['cross-origin-resource-policy'], 'cross-origin');
      return setCookieLine(res, 'spv');
    };
    const first = [];
    for (const [i, ua] of agents.entries()) first.push(await cookie(ua, `fresh-${i}`));
    for (const line of first) assert.match(line, /^spv=[0-9a-f]{32}; Path=\/; Max-Age=31536000; HttpOnly; SameSite=Lax$/);
    assert.equal(new Set(first).size, agents.length, 'each client its own visitor');
    for (let round = 0; round < 2; round++) {
      for (const [i, ua] of [...agents.entries()].reverse()) {
        assert.equal(await cookie(ua, `again-${round}-${i}`), first[i], `client ${i}, round ${round}`);
      }
    }
  });

  test('answers keep HTTP/1.1 connections alive (a mail client loads many images on one connection)', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const sockets = new Set();
      for (let i = 0; i < 3; i++) {
        const res = await new Promise((resolve, reject) => {
          const req = http.get(`${srv.base}/spy-pixel.gif?campaign=news&email=ka${i}`, { agent, headers: human }, (r) => {
            sockets.add(r.socket);
            r.resume();
            r.on('end', () => resolve(r));
          });
          req.on('error', reject);
        });
        assert.equal(res.statusCode, 200);
        assert.notEqual(res.headers.connection, 'close', `answer ${i} closes the connection`);
      }
      assert.equal(sockets.size, 1, 'three requests on one kept-alive connection');
    } finally {
      agent.destroy();
    }
  });
});

describe('opaque pixels and links', () => {
  test('POST /api/v1/pixels hands out a URL that hides the recipient and records that recipient', async () => {
    const email = 'carol.secret+tag@example.org';
    const r = await srv.api('POST', '/pixels', { campaign: 'news', recipient: email });
    assert.ok(r.status === 200 || r.status === 201, `${r.status} ${r.text}`);
    const { url, html } = r.json();
    const u = new URL(url);
    assert.equal(u.origin, srv.base);
    assert.match(u.pathname, /^\/o\/[A-Za-z0-9_-]+\.gif$/);
    for (const needle of [email, encodeURIComponent(email), 'carol', 'secret', Buffer.from(email).toString('base64').slice(0, 12)]) {
      assert.ok(!url.includes(needle), `URL must not carry the recipient (${needle})`);
    }
    assert.match(html, /^<img\b/);
    assert.ok(html.includes(`src="${url}"`), 'html loads the URL');

    const res = await srv.req(u.pathname, { headers: human });
    assertPixel(res);
    const [ev] = await srv.events('news', '?limit=1');
    assert.equal(ev.recipient, email);
    assert.equal(ev.kind, 'open');

    // The same recipient gets the same URL (one URL per recipient), another one a different URL.
    const again = (await srv.apiOk('POST', '/pixels', { campaign: 'news', recipient: 'dave@example.org' })).url;
    assert.notEqual(again, url);
  });

  test('a pixel without recipient records opens without recipient', async () => {
    const { url } = await srv.apiOk('POST', '/pixels', { campaign: 'other' });
    assert.match(new URL(url).pathname, /^\/o\/[A-Za-z0-9_-]+\.gif$/);
    assertPixel(await srv.req(new URL(url).pathname, { headers: human }));
    const [ev] = await srv.events('other', '?limit=1');
    assert.ok(ev.recipient === '' || ev.recipient === null, JSON.stringify(ev.recipient));
  });

  test('a damaged or foreign /o/ token gets the GIF and records nothing', async () => {
    const { url } = await srv.apiOk('POST', '/pixels', { campaign: 'news', recipient: 'erin@example.org' });
    const path = new URL(url).pathname;
    const tok = path.slice(3, -4);
    const i = Math.floor(tok.length / 2);
    const flipped = tok.slice(0, i) + (tok[i] === 'A' ? 'B' : 'A') + tok.slice(i + 1);
    const link = (await srv.apiOk('POST', '/links', { campaign: 'news', recipient: 'erin@example.org', target: 'https://example.com/' })).url;
    const linkTok = new URL(link).pathname.slice(3);
    const before = await eventCount('news');
    const m0 = await srv.metrics();
    const bad = [`/o/${flipped}.gif`, `/o/${tok}`, `/o/${tok.slice(0, -2)}.gif`, `/o/${tok}x.gif`, '/o/.gif', '/o/%00.gif', `/o/${linkTok}.gif`];
    for (const p of bad) assertPixel(await srv.req(p, { headers: human }), p);
    const m1 = await srv.metrics();
    assert.equal(await eventCount('news'), before, 'nothing recorded');
    assert.equal(m1.spypixel_opens_recorded_total, m0.spypixel_opens_recorded_total);
    assert.ok(m1.spypixel_opens_invalid_total - m0.spypixel_opens_invalid_total >= bad.length);
  });

  test('POST /api/v1/links: GET /c/TOKEN redirects to the target and records a click', async () => {
    const target = 'https://example.com/x?y=1&z=%20';
    const r = await srv.api('POST', '/links', { campaign: 'news', recipient: 'frank@example.org', target });
    assert.ok(r.status === 200 || r.status === 201, `${r.status} ${r.text}`);
    const { url } = r.json();
    assert.match(new URL(url).pathname, /^\/c\/[A-Za-z0-9_-]+$/);
    assert.ok(!url.includes('frank') && !url.includes('example.com'), 'the link hides recipient and target');
    const c0 = await srv.campaign('news');
    const res = await srv.req(new URL(url).pathname, { headers: human });
    assert.equal(res.status, 302);
    assert.equal(res.headers.location, target);
    const [ev] = await srv.events('news', '?limit=1');
    assert.equal(ev.kind, 'click');
    assert.equal(ev.recipient, 'frank@example.org');
    const c1 = await srv.campaign('news');
    assert.equal(c1.total_views, c0.total_views, 'a click is not a view');
    if (c1.clicks !== undefined) assert.equal(c1.clicks, c0.clicks + 1);
  });

  test('a forged /c/ token is a 404 without Location (no open redirect) and records nothing', async () => {
    const { url } = await srv.apiOk('POST', '/links', { campaign: 'news', recipient: 'gina', target: 'https://example.com/' });
    const tok = new URL(url).pathname.slice(3);
    const i = Math.floor(tok.length / 2);
    const flipped = tok.slice(0, i) + (tok[i] === 'A' ? 'B' : 'A') + tok.slice(i + 1);
    const pixelTok = new URL((await srv.apiOk('POST', '/pixels', { campaign: 'news', recipient: 'gina' })).url).pathname.slice(3, -4);
    const before = await eventCount('news');
    for (const p of [`/c/${flipped}`, '/c/', '/c/https%3A%2F%2Fevil.example', '/c//evil.example', `/c/${pixelTok}`]) {
      const res = await srv.req(p, { headers: human });
      assert.equal(res.status, 404, p);
      assert.equal(res.headers.location, undefined, `${p}: no Location`);
    }
    assert.equal(await eventCount('news'), before);
  });

  test('links to anything but http(s) URLs are refused with 400', async () => {
    for (const target of ['javascript:alert(1)', 'JAVASCRIPT:alert(1)', 'data:text/html,<b>x</b>', '//evil.example/', 'ftp://example.com/', '', 'https://example.com/"><script>']) {
      const r = await srv.api('POST', '/links', { campaign: 'news', recipient: 'hank', target });
      assert.equal(r.status, 400, `${target}: ${r.status} ${r.text}`);
      assert.equal(typeof r.json().error, 'string');
    }
    const missing = await srv.api('POST', '/links', { campaign: 'news', recipient: 'hank' });
    assert.equal(missing.status, 400);
  });

  test('the creator refuses bad IDs with 400', async () => {
    for (const body of [{ campaign: '<script>', recipient: 'x' }, { campaign: 'news', recipient: 'a b' }, { recipient: 'x' }, { campaign: 'a'.repeat(129) }, { campaign: 5 }]) {
      const r = await srv.api('POST', '/pixels', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.status}`);
      assert.equal(typeof r.json().error, 'string');
    }
  });
});

describe('health and metrics', () => {
  test('/healthz answers {"status":"ok"} with no problems or warnings, the index backlog and the journal\'s state', async () => {
    const r = await srv.req('/healthz');
    assert.equal(r.status, 200);
    const body = r.json();
    assert.equal(body.status, 'ok');
    assert.deepEqual(body.problems, []);
    assert.ok(Number.isInteger(body.index_backlog_bytes) && body.index_backlog_bytes >= 0, r.text);
    // SQLite: no events_default_rows (PostgreSQL's), no warnings.
    assert.deepEqual(Object.keys(body).sort(), ['index_backlog_bytes', 'journal', 'problems', 'status', 'warnings']);
    assert.deepEqual(body.warnings, []);
    assert.deepEqual(body.journal, { held: 0, held_bytes: 0, dropped: 0, damaged: 0 });
    assert.match(r.headers['content-type'], /^application\/json/);
  });

  test('an answered open is journaled at once and indexed soon after; the backlog drains to 0', async () => {
    const before = await srv.metrics();
    const r = await srv.pixel({ campaign: 'news', email: 'journal@example.com' }, { 'User-Agent': UA.thunderbird });
    assertPixel(r);
    const after = await srv.metrics();
    assert.equal(after.spypixel_opens_journaled_total, before.spypixel_opens_journaled_total + 1);
    await srv.indexed();
    const m = await srv.metrics();
    assert.equal(m.spypixel_index_backlog_bytes, 0);
    assert.equal(m.spypixel_opens_recorded_total, before.spypixel_opens_recorded_total + 1);
  });

  test('/metrics is Prometheus text with the tracking counters', async () => {
    const r = await srv.req('/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/plain/);
    assert.match(r.text, /^# TYPE spypixel_opens_recorded_total counter$/m);
    const m = await srv.metrics();
    for (const name of ['spypixel_opens_recorded_total', 'spypixel_opens_unknown_campaign_total', 'spypixel_opens_invalid_total', 'spypixel_http_requests_total']) {
      assert.ok(Number.isFinite(m[name]), `${name} present`);
    }
    assert.ok(m.spypixel_opens_recorded_total > 0);
    // Every line is a comment or "name value".
    for (const line of r.text.split('\n').filter(Boolean)) assert.match(line, /^(#.*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+]+)$/, line);
  });

  test('a raw HTTP/1.0 request also gets the GIF', async () => {
    const r = await rawRequest(srv.port, 'GET /spy-pixel.gif?campaign=news&email=raw10 HTTP/1.0\r\n\r\n');
    assert.equal(r.status, 200);
    assert.equal(r.body.length, GIF_LENGTH);
  });
});
