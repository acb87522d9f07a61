// Beyond the seed: any image as a tracker, --public-url, webhooks, the all-campaigns live
// stream, clicks beside opens, first and last open per recipient.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { GIF_LENGTH, NO_CACHE, UA, assertPixel, freePort, startServer } from './harness.mjs';

const human = { 'User-Agent': UA.thunderbird };

// A 1x1 red PNG.
const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082',
  'hex',
);

let srv;
before(async () => {
  srv = await startServer({ campaigns: ['feat'], flags: ['--threads', '1'] });
});
after(async () => {
  await srv?.stop();
});

test('--threads 1 starts without a libmicrohttpd warning', () => {
  assert.doesNotMatch(srv.logs(), /level=warn/);
});

describe('any image as a tracker', () => {
  test('POST /api/v1/images stores the image; every load of its URL serves it and records an open', async () => {
    const up = await srv.req('/api/v1/images?campaign=feat&recipient=img%40example.com', {
      method: 'POST', body: PNG, headers: { Authorization: `Bearer ${srv.token}`, 'Content-Type': 'image/png' },
    });
    assert.ok(up.status === 200 || up.status === 201, `${up.status} ${up.text}`);
    const { url } = up.json();
    const u = new URL(url);
    assert.equal(u.origin, srv.base);
    assert.ok(!url.includes('img@example.com') && !url.includes('img%40example.com'), 'the URL hides the recipient');
    for (let i = 0; i < 2; i++) {
      const res = await srv.req(u.pathname, { headers: human });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], 'image/png');
      assert.ok(res.body.equals(PNG), 'the uploaded bytes come back');
      assert.equal(res.headers['cache-control'], NO_CACHE);
    }
    const evs = await srv.events('feat', '?limit=2');
    assert.deepEqual(evs.map((e) => e.recipient), ['img@example.com', 'img@example.com']);
    assert.equal((await srv.campaign('feat')).per_recipient.find((r) => r.recipient === 'img@example.com').views, 2);
  });

  test('uploads that are not PNG/GIF/JPEG/WebP, or without campaign, or without credentials are refused', async () => {
    const auth = { Authorization: `Bearer ${srv.token}` };
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>');
    for (const [p, body, headers, status] of [
      ['/api/v1/images?campaign=feat', svg, auth, 400],
      ['/api/v1/images?campaign=feat', Buffer.from('hello'), auth, 400],
      ['/api/v1/images?campaign=feat', Buffer.alloc(0), auth, 400],
      ['/api/v1/images', PNG, auth, 400],
      ['/api/v1/images?campaign=%3Cx%3E', PNG, auth, 400],
      ['/api/v1/images?campaign=feat', PNG, {}, 401],
    ]) {
      const r = await srv.req(p, { method: 'POST', body, headers });
      assert.equal(r.status, status, `${p} ${body.subarray(0, 8).toString()}: ${r.status} ${r.text}`);
    }
  });

  test('a damaged /i/ token answers the 1x1 GIF and records nothing', async () => {
    const { url } = (await srv.req('/api/v1/images?campaign=feat&recipient=dmg', {
      method: 'POST', body: PNG, headers: { Authorization: `Bearer ${srv.token}` },
    })).json();
    const p = new URL(url).pathname;
    const i = 10;
    const bad = p.slice(0, 3 + i) + (p[3 + i] === 'A' ? 'B' : 'A') + p.slice(4 + i);
    const before = (await srv.events('feat')).length;
    const res = await srv.req(bad, { headers: human });
    assertPixel(res);
    assert.equal(res.body.length, GIF_LENGTH);
    assert.equal((await srv.events('feat')).length, before);
  });
});

describe('clicks beside opens', () => {
  test('clicks are counted apart from views; a script or an image proxy following a link is machine', async () => {
    await srv.apiOk('POST', '/campaigns', { id: 'clk' });
    const { url } = await srv.apiOk('POST', '/links', { campaign: 'clk', recipient: 'cl1', target: 'https://example.com/' });
    const p = new URL(url).pathname;
    assert.equal((await srv.req(p, { headers: human })).status, 302);
    assert.equal((await srv.req(p, { headers: { 'User-Agent': UA.curl } })).status, 302);
    assert.equal((await srv.req(p, { headers: { 'User-Agent': UA.gmail } })).status, 302);
    const evs = await srv.events('clk');
    assert.deepEqual(evs.map((e) => e.kind), ['click', 'click', 'click']);
    assert.deepEqual(evs.map((e) => e.class), ['machine', 'machine', 'human']);
    assert.equal(evs[0].target ?? 'https://example.com/', 'https://example.com/');
    const c = await srv.campaign('clk');
    assert.equal(c.total_views, 0, 'clicks are not views');
    assert.equal(c.unique_views, 0);
    if ('clicks' in c) assert.equal(c.clicks, 1, 'only the human click counts');
  });

  test('per recipient: first and last counted open', async () => {
    await srv.apiOk('POST', '/campaigns', { id: 'times' });
    assertPixel(await srv.pixel({ campaign: 'times', email: 't1' }, { 'User-Agent': UA.curl }));
    assertPixel(await srv.pixel({ campaign: 'times', email: 't1' }, human));
    assertPixel(await srv.pixel({ campaign: 'times', email: 't1' }, human));
    const evs = (await srv.events('times')).reverse();
    const r = (await srv.campaign('times')).per_recipient.find((x) => x.recipient === 't1');
    assert.equal(r.views, 2);
    assert.equal(r.first_view_at, evs[1].ts, 'the first counted open, not the machine one');
    assert.equal(r.last_view_at, evs[2].ts);
  });
});

describe('live stream of every campaign', () => {
  test('GET /api/v1/stream sends opens of any campaign; a session cookie opens it too', async () => {
    const l = await srv.login();
    let req;
    const got = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no event within 10 s')), 10000);
      let buf = '';
      req = http.get(`${srv.base}/api/v1/stream`, { headers: { Cookie: `sp_session=${l.cookies.sp_session}` }, agent: false }, (res) => {
        if (res.statusCode !== 200) { clearTimeout(timer); reject(new Error(`stream: ${res.statusCode}`)); return; }
        res.setEncoding('utf8');
        res.on('data', (d) => {
          buf += d;
          const m = /(?:^|\n)event: open\ndata: (.*)\n\n/.exec(buf);
          if (m) { clearTimeout(timer); resolve(JSON.parse(m[1])); }
        });
        res.on('error', () => {});
        srv.pixel({ campaign: 'feat', email: 'everywhere' }, human).catch(reject);
      });
      req.on('error', (e) => { clearTimeout(timer); reject(e); });
    }).finally(() => req?.destroy());
    assert.equal(got.recipient, 'everywhere');
    assert.equal(got.campaign, 'feat');
  });
});

describe('--public-url', () => {
  test('tracking URLs use it, cookies become Secure, and its origin is the self-referer', async () => {
    const s = await startServer({ campaigns: ['pub'], flags: ['--public-url', 'https://track.example.com/'] });
    try {
      const { url, html } = await s.apiOk('POST', '/pixels', { campaign: 'pub', recipient: 'p1' });
      assert.match(url, /^https:\/\/track\.example\.com\/o\/[A-Za-z0-9_-]+\.gif$/);
      assert.ok(html.includes(url));
      const link = (await s.apiOk('POST', '/links', { campaign: 'pub', recipient: 'p1', target: 'https://example.com/' })).url;
      assert.match(link, /^https:\/\/track\.example\.com\/c\//);
      // Behind a TLS proxy: the visitor cookie must be Secure to travel cross-site.
      const res = await s.req(new URL(url).pathname, { headers: human });
      assertPixel(res);
      const spv = [].concat(res.headers['set-cookie'] || []).find((c) => c.startsWith('spv='));
      assert.match(spv, /;\s*Secure/i);
      assert.match(spv, /SameSite=None/i);
      const ref = await s.pixel({ campaign: 'pub', email: 'p2' }, { ...human, Referer: 'https://track.example.com/campaigns/pub' });
      assertPixel(ref);
      const [ev] = await s.events('pub', '?limit=1');
      assert.equal(ev.recipient, 'p2');
      assert.equal(ev.class, 'self');
    } finally {
      await s.stop();
    }
  });
});

describe('--webhook', () => {
  test('each open is POSTed as JSON to the webhook URL', async () => {
    const got = [];
    let wake;
    const hook = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        got.push({ method: req.method, type: req.headers['content-type'], body });
        res.end('ok');
        wake?.();
      });
    });
    const port = await freePort();
    await new Promise((r) => hook.listen(port, '127.0.0.1', r));
    const s = await startServer({ campaigns: ['hook'], flags: ['--webhook', `http://127.0.0.1:${port}/hook`] });
    try {
      assertPixel(await s.pixel({ campaign: 'hook', email: 'hooked@example.com' }, human));
      const deadline = Date.now() + 5000;
      while (!got.length && Date.now() < deadline) await new Promise((r) => { wake = r; setTimeout(r, 200); });
      assert.ok(got.length >= 1, 'no webhook POST within 5 s');
      assert.equal(got[0].method, 'POST');
      assert.match(got[0].type || '', /json/);
      const j = JSON.parse(got[0].body);
      assert.ok(JSON.stringify(j).includes('hooked@example.com'), 'the POST names the recipient');
    } finally {
      await s.stop();
      await new Promise((r) => hook.close(r));
    }
  });
});
