// engage: the tracking block (POST /api/v1/pixels "block", spypixel pixel --block), its
// read-time image held over raw sockets, prints and forwards, and the fields in the events
// API, the exports and webhooks.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { UA, freePort, request, run, sleep, startServer, waitFor } from './harness.mjs';

const browser = UA.chrome.replace('HeadlessChrome', 'Chrome');

let srv;
let hook;
const posts = [];
before(async () => {
  hook = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => { posts.push(JSON.parse(body)); res.end('ok'); });
  });
  const port = await freePort();
  await new Promise((r) => hook.listen(port, '127.0.0.1', r));
  srv = await startServer({ flags: ['--webhook', `http://127.0.0.1:${port}/hook`] });
});
after(async () => {
  await srv?.stop();
  await new Promise((r) => hook?.close(r));
});

async function block(campaign, recipient) {
  const j = await srv.apiOk('POST', '/pixels', { campaign, recipient, block: true });
  const urls = [...j.html.matchAll(/url\((http[^)]+)\)/g)].map((m) => m[1]);
  return { ...j, print: urls[0], forward: urls[1] };
}

/** Opens URL's image on a raw socket as a browser would; resolves {sock, chunks()}. */
async function hold(port, url, ua = browser) {
  const u = new URL(url);
  const sock = net.connect({ port, host: '127.0.0.1' });
  const chunks = [];
  sock.on('data', (d) => chunks.push({ at: Date.now(), d }));
  sock.on('error', () => {});
  await new Promise((r) => sock.on('connect', r));
  sock.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUser-Agent: ${ua}\r\n\r\n`);
  await waitFor(() => chunks.length > 0, { what: 'the image head' });
  return { sock, chunks, bytes: () => Buffer.concat(chunks.map((c) => c.d)) };
}

async function eventsOf(campaign) {
  await srv.indexed();
  return srv.events(campaign);
}

describe('the tracking block', () => {
  test('POST /pixels with "block": true answers a style, one element and the image, each part its own signed URL', async () => {
    const b = await block('blk', 'ann@example.com');
    assert.match(b.url, /^http:\/\/127\.0\.0\.1:\d+\/o\/[A-Za-z0-9_-]+\.gif$/);
    assert.match(b.html, /^<style>@media print\{[^}]+\{background-image:url\(/);
    assert.match(b.html, /blockquote \.sp-/);
    assert.match(b.html, /div\.OutlookMessageHeader/);
    assert.match(b.html, /table\.moz-email-headers-table/);
    assert.equal((b.html.match(/<div /g) || []).length, 1, 'one element');
    assert.equal((b.html.match(/<img /g) || []).length, 1, 'one image');
    assert.ok(b.html.includes(`<img src="${b.url}"`));
    const all = new Set([b.url, b.print, b.forward]);
    assert.equal(all.size, 3, 'three different URLs');
    assert.ok(!b.html.includes('ann@example.com'), 'no readable address');
    // The plain pixel stays the default; "block" must be a boolean, and only on a pixel.
    const plain = await srv.apiOk('POST', '/pixels', { campaign: 'blk', recipient: 'ann@example.com' });
    assert.match(plain.html, /^<img /);
    assert.equal((await srv.api('POST', '/pixels', { campaign: 'blk', block: 'yes' })).status, 400);
    assert.equal((await srv.api('POST', '/links', { campaign: 'blk', target: 'https://example.com/', block: true })).status, 400);
  });

  test('spypixel pixel --block prints the block', async () => {
    const r = await run(['pixel', '--campaign', 'blk', '--recipient', 'cli@example.com', '--block', '--data', srv.dataDir,
      '--public-url', 'https://px.example']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^<style>@media print/);
    assert.equal((r.stdout.match(/https:\/\/px\.example\/o\//g) || []).length, 3);
  });

  test('a print and a forward are events of their own kind, tied to the recipient; webhooks send them', async () => {
    const b = await block('pf', 'pat@example.com');
    for (const u of [b.print, b.forward]) {
      const res = await request(u, { headers: { 'User-Agent': browser } });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], 'image/gif');
    }
    const evs = await eventsOf('pf');
    assert.deepEqual(evs.map((e) => [e.kind, e.recipient]).sort(),
      [['forward', 'pat@example.com'], ['print', 'pat@example.com']]);
    const c = await srv.campaign('pf');
    assert.equal(c.total_views, 0, 'a print is no view');
    assert.equal(c.clicks, 0, 'nor a click');
    assert.equal(c.engagement.prints, 1);
    assert.equal(c.engagement.forwards, 1);
    for (const kind of ['print', 'forward']) {
      const only = await srv.apiOk('GET', `/campaigns/pf/events?kind=${kind}`);
      assert.deepEqual(only.map((e) => e.kind), [kind], `the log filtered by kind=${kind}`);
    }
    await waitFor(() => posts.some((p) => p.type === 'print') && posts.some((p) => p.type === 'forward'),
      { what: 'print and forward webhooks' });
  });
});

describe('read time', () => {
  test('the image trickles a frame a second; closed after 2.6 s the open is skimmed, after 0.5 s glanced', async () => {
    const b = await block('rt', 'rita@example.com');
    const [long, short] = await Promise.all([hold(srv.port, b.url), hold(srv.port, b.url)]);
    await sleep(500);
    short.sock.destroy();
    await sleep(2100);
    const head = long.bytes().toString('latin1');
    assert.match(head, /^HTTP\/1\.1 200/);
    assert.match(head, /transfer-encoding: chunked/i);
    assert.match(head, /GIF89a/);
    assert.ok(long.chunks.length >= 2, `a second frame came: ${long.chunks.length} chunks`);
    assert.ok(!/\r\n0\r\n\r\n$/.test(head), 'the image has not ended');
    long.sock.destroy();
    await waitFor(async () => (await eventsOf('rt')).every((e) => e.engagement), { what: 'both reads folded' });
    const evs = await eventsOf('rt');
    const got = evs.map((e) => [e.engagement, e.read_ms]).sort((x, y) => x[1] - y[1]);
    assert.equal(got[0][0], 'glanced');
    assert.ok(got[0][1] >= 400 && got[0][1] < 2000, `glanced ${got[0][1]} ms`);
    assert.equal(got[1][0], 'skimmed');
    assert.ok(got[1][1] >= 2500 && got[1][1] < 4500, `skimmed ${got[1][1]} ms`);
    const c = await srv.campaign('rt');
    assert.equal(c.engagement.glanced, 1);
    assert.equal(c.engagement.skimmed, 1);
    // The exports carry the fields; the webhook sends the read as its own note.
    const csv = await srv.api('GET', '/campaigns/rt/events.csv');
    const [header, ...rows] = csv.text.trim().split('\n');
    assert.match(header, /,engagement,read_ms$/);
    assert.ok(rows.some((r) => /,"skimmed","\d+"$/.test(r)), csv.text);
    const json = (await srv.api('GET', '/campaigns/rt/events.json')).json();
    assert.ok(json.some((e) => e.engagement === 'glanced' && e.read_ms > 0));
    await waitFor(() => posts.some((p) => p.type === 'read' && p.event.engagement === 'skimmed'), { what: 'the read webhook' });
  });

  test('a caching proxy gets the whole image at once, and its open is unmeasured, never read', async () => {
    const b = await block('px', 'gm@example.com');
    const t0 = Date.now();
    const res = await request(b.url, { headers: { 'User-Agent': UA.gmail } });
    assert.equal(res.status, 200);
    assert.ok(Date.now() - t0 < 5000, 'not held');
    const evs = await eventsOf('px');
    assert.equal(evs[0].class, 'proxy');
    assert.equal(evs[0].engagement, 'unmeasured');
    assert.equal(evs[0].read_ms, null);
  });

  test('a machine held to the end is unmeasured, not read', async () => {
    const b = await block('mach', 'bot@example.com');
    const h = await hold(srv.port, b.url, 'Mozilla/5.0 (compatible; Googlebot/2.1)');
    await sleep(1200);
    h.sock.destroy();
    await waitFor(async () => (await eventsOf('mach'))[0]?.read_ms !== null, { what: 'the read folded' });
    const [ev] = await eventsOf('mach');
    assert.equal(ev.class, 'machine');
    assert.equal(ev.engagement, 'unmeasured');
  });

  test('plain pixel opens carry the fields as null', async () => {
    const plain = await srv.apiOk('POST', '/pixels', { campaign: 'pl', recipient: 'p@example.com' });
    await request(plain.url, { headers: { 'User-Agent': browser } });
    const [ev] = await eventsOf('pl');
    assert.equal(ev.engagement, null);
    assert.equal(ev.read_ms, null);
  });
});

describe('--read-time-max', () => {
  test('above the cap the image ends at once and the open is unmeasured; a kill -9 while held keeps the open', async () => {
    const s = await startServer({ flags: ['--read-time-max', '1'], keepData: true });
    try {
      const j = await s.apiOk('POST', '/pixels', { campaign: 'cap', recipient: 'c@example.com', block: true });
      const held = await hold(s.port, j.url);
      const t0 = Date.now();
      const second = await request(j.url, { headers: { 'User-Agent': browser } });
      assert.equal(second.status, 200);
      assert.ok(Date.now() - t0 < 5000, 'the second image was not held');
      assert.equal(second.body.length, 43, 'the plain image');
      await s.indexed();
      const evs = await s.events('cap');
      assert.equal(evs.length, 2);
      assert.deepEqual(evs.map((e) => e.engagement).sort(), ['unmeasured', null].sort());
      assert.equal((await s.metrics()).spypixel_reads_over_cap_total, 1);
      // The held open was journaled when it came: a crash loses only its read time.
      await s.kill9();
      held.sock.destroy();
      const again = await startServer({ dataDir: s.dataDir, token: s.token });
      try {
        await again.indexed();
        assert.equal((await again.events('cap')).length, 2);
      } finally {
        await again.stop();
      }
    } finally {
      await s.stop({ keep: false });
    }
  });
});
