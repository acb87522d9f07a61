// Limits that keep the server up on the open internet: bodies read only when they will be
// used (and within a memory budget), slow clients (Slowloris), slow readers of uploaded
// images, request framing (RFC 9112), link targets as valid URLs, and who may read
// /metrics. Memory is the server's resident set from /proc; time bounds are generous (a
// hang or a starvation exceeds them, a slow machine does not).
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';

import { GIF_LENGTH, UA, assertPixel, prepareData, request, sleep, sqlite, startServer, tempDir, waitFor } from './harness.mjs';
import { httpsRequest, makeCA, startTls } from './tls.mjs';

const MiB = 1 << 20;

function rss(pid) {
  return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
}

/** Samples the server's resident memory every 10 ms until stop(); resolves the highest. */
function sampleMemory(pid) {
  let max = rss(pid);
  const timer = setInterval(() => { try { max = Math.max(max, rss(pid)); } catch { /* exited */ } }, 10);
  return { stop() { clearInterval(timer); max = Math.max(max, rss(pid)); return max; } };
}

/**
 * Writes BYTES on a fresh socket (then BODY, if given, in chunks for as long as no answer
 * came) and collects what comes back. Resolves {status, head, text, closed}: closed is
 * whether the server ended the connection within CLOSE_MS after its answer.
 */
function exchange(port, bytes, { body, timeoutMs = 5000, closeMs = 3000, localAddress } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress });
    const chunks = [];
    let done = false;
    let answered = false;
    let closeTimer;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(closeTimer);
      sock.destroy();
      const raw = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
      const split = raw.indexOf('\r\n\r\n');
      resolve({ status: m ? Number(m[1]) : null, head: split >= 0 ? raw.slice(0, split) : raw, text: split >= 0 ? raw.slice(split + 4) : '', closed });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('data', (d) => {
      chunks.push(d);
      if (!answered && Buffer.concat(chunks).includes('\r\n\r\n')) {
        answered = true;
        closeTimer = setTimeout(() => finish(false), closeMs);
      }
    });
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
    sock.on('connect', async () => {
      sock.write(bytes);
      if (!body) return;
      const chunk = Buffer.alloc(64 * 1024, 0x41);
      for (let sent = 0; sent < body && !answered && !done; sent += chunk.length) {
        if (!sock.write(chunk)) await new Promise((r) => { sock.once('drain', r); sock.once('close', r); });
      }
    });
  });
}

function png(bytes) {
  const b = Buffer.alloc(bytes, 0x42);
  Buffer.from('\x89PNG\r\n\x1a\n', 'latin1').copy(b);
  return b;
}

/** An authenticated upload sent in two parts: resolves once its first MiB is written, with
 * finish() (sends the rest; resolves the answer) and abort(). */
function startUpload(srv, size) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: srv.port, method: 'POST', path: '/api/v1/images?campaign=up', agent: false,
      headers: { Authorization: `Bearer ${srv.token}`, 'Content-Type': 'image/png', 'Content-Length': size },
    });
    const answer = new Promise((res, rej) => {
      req.on('response', (r) => {
        let text = '';
        r.on('data', (d) => { text += d; });
        r.on('end', () => res({ status: r.statusCode, headers: r.headers, text }));
      });
      req.on('error', rej);
    });
    const body = png(size);
    req.write(body.subarray(0, MiB), () => resolve({
      answer,
      finish() { req.end(body.subarray(MiB)); return answer; },
      abort() { req.destroy(); },
    }));
    req.on('error', reject);
  });
}

describe('request bodies are read only when they will be used', () => {
  let srv;
  before(async () => { srv = await startServer({ campaigns: ['up', 'get'], flags: ['--body-memory', '16'] }); });
  after(async () => { await srv?.stop(); });

  test('a body without credentials is refused with 401 from its head, and the connection closes', async () => {
    const r = await exchange(srv.port, 'POST /api/v1/images?campaign=up HTTP/1.1\r\nHost: a\r\nContent-Type: image/png\r\nContent-Length: 8000000\r\n\r\n');
    assert.equal(r.status, 401, 'answered before any of the body was sent');
    assert.ok(r.closed, 'the connection is closed');
    assert.match(r.text, /Bearer/);
  });

  test('a declared length over the route\'s limit is refused with 413 from the head', async () => {
    const up = await exchange(srv.port, `POST /api/v1/images?campaign=up HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${srv.token}\r\nContent-Length: ${9 * MiB}\r\n\r\n`);
    assert.equal(up.status, 413);
    assert.ok(up.closed);
    const json = await exchange(srv.port, `POST /api/v1/campaigns HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${srv.token}\r\nContent-Length: ${2 * MiB}\r\n\r\n`);
    assert.equal(json.status, 413);
    // The login is the one body taken without credentials: a small one.
    const login = await exchange(srv.port, 'POST /api/v1/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n');
    assert.equal(login.status, 413);
    assert.ok(login.closed);
  });

  test('a body on a method its route does not take is refused with 405 from the head', async () => {
    for (const head of [
      'POST /spy-pixel.gif?campaign=get HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n',
      'GET /api/v1/login HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n',
      `BREW /api/v1/campaigns HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${srv.token}\r\nContent-Length: 1000000\r\n\r\n`,
    ]) {
      const r = await exchange(srv.port, head);
      assert.equal(r.status, 405, head);
      assert.ok(r.closed, head);
    }
  });

  test('forty unauthenticated 8 MB uploads: each gets 401, and resident memory stays flat', async () => {
    const mem = sampleMemory(srv.pid);
    const before = rss(srv.pid);
    const head = 'POST /api/v1/images?campaign=up HTTP/1.1\r\nHost: a\r\nContent-Type: image/png\r\nContent-Length: 8000000\r\n\r\n';
    const results = await Promise.all(Array.from({ length: 40 }, () => exchange(srv.port, head, { body: 8000000, timeoutMs: 15000 })));
    const peak = mem.stop();
    assert.deepEqual(results.map((r) => r.status), Array(40).fill(401));
    assert.ok(peak - before < 24 * MiB, `resident memory grew by ${((peak - before) / MiB).toFixed(1)} MiB (from ${(before / MiB).toFixed(1)})`);
  });

  test('uploads past --body-memory get 503 with Retry-After; the ones admitted complete', async () => {
    const a = await startUpload(srv, 7000000);
    const b = await startUpload(srv, 7000000);
    try {
      // Sent is not yet admitted: the server takes a body's room when it reads its head.
      await waitFor(async () => (await srv.metrics()).spypixel_http_body_bytes === 14000000, { what: 'both uploads admitted' });
      // 2 x 7 MB in flight of 16 MiB: a third does not fit, whatever its sender.
      const c = await exchange(srv.port, `POST /api/v1/images?campaign=up HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${srv.token}\r\nContent-Length: 7000000\r\n\r\n`);
      assert.equal(c.status, 503);
      assert.match(c.head, /\r\nRetry-After: \d+/i);
      assert.ok(c.closed);
      const [ra, rb] = await Promise.all([a.finish(), b.finish()]);
      assert.equal(ra.status, 201, ra.text);
      assert.equal(rb.status, 201, rb.text);
    } finally {
      a.abort();
      b.abort();
    }
    // The budget came back.
    await waitFor(async () => (await srv.metrics()).spypixel_http_body_bytes === 0, { what: 'the budget back' });
    const d = await startUpload(srv, 7000000);
    assert.equal((await d.finish()).status, 201);
  });

  test('a GET with a body still gets the pixel, and its open is recorded', async () => {
    const r = await exchange(srv.port, 'GET /spy-pixel.gif?campaign=get&email=withbody HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello');
    assert.equal(r.status, 200);
    assert.match(r.head, /content-type: image\/gif/i);
    await waitFor(async () => (await srv.events('get')).some((e) => e.recipient === 'withbody'), { what: 'the open' });
  });

  test('a chunked login body is still read', async () => {
    const res = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: srv.port, method: 'POST', path: '/api/v1/login', agent: false, headers: { 'Content-Type': 'application/json' } }, (r) => {
        r.resume();
        r.on('end', () => resolve(r));
      });
      req.on('error', reject);
      req.write(`{"user":"${srv.user}",`);
      req.end(`"password":"${srv.password}"}`);
    });
    assert.equal(res.statusCode, 200);
  });
});

describe('slow clients (Slowloris)', () => {
  test('a request whose head is not in within --header-timeout gets 408 and is closed', async () => {
    const srv = await startServer({ campaigns: ['slow'], flags: ['--header-timeout', '1'] });
    try {
      const t0 = Date.now();
      const got = await new Promise((resolve) => {
        const sock = net.connect(srv.port, '127.0.0.1');
        let text = '';
        const drip = setInterval(() => sock.writable && sock.write(`X-Drip-${Date.now()}: 1\r\n`), 500);
        const done = () => { clearInterval(drip); clearTimeout(limit); resolve(text); };
        const limit = setTimeout(done, 8000);
        sock.on('connect', () => sock.write('GET /spy-pixel.gif?campaign=slow HTTP/1.1\r\nHost: a\r\n'));
        sock.on('data', (d) => { text += d; });
        sock.on('error', () => {});
        sock.on('close', done);
      });
      const ms = Date.now() - t0;
      assert.match(got, /^HTTP\/1\.1 408 /);
      assert.ok(ms >= 700 && ms < 7000, `closed after ${ms} ms`);
      assertPixel(await srv.pixel({ campaign: 'slow', email: 'after' }, { 'User-Agent': UA.thunderbird }));
      assert.ok((await srv.metrics()).spypixel_http_head_timeouts_total >= 1);
    } finally {
      await srv.stop();
    }
  });

  test('over HTTPS an unfinished request is closed at --header-timeout with no bytes outside TLS', async () => {
    const pki = await makeCA(await tempDir('spypixel-limits-tls-'));
    const pair = await pki.cert('server', 'localhost');
    const srv = await startTls({ ...pair, flags: ['--header-timeout', '1'] });
    try {
      // One that never starts its handshake, one that trickles its request inside TLS.
      const raw = await new Promise((resolve) => {
        const sock = net.connect(srv.tlsPort, '127.0.0.1');
        let bytes = 0;
        const t0 = Date.now();
        sock.on('data', (d) => { bytes += d.length; });
        sock.on('error', () => {});
        sock.on('close', () => resolve({ bytes, ms: Date.now() - t0 }));
      });
      assert.equal(raw.bytes, 0);
      assert.ok(raw.ms < 7000, `closed after ${raw.ms} ms`);
      const inside = await new Promise((resolve) => {
        const errors = [];
        let text = '';
        const sock = tls.connect({ port: srv.tlsPort, host: '127.0.0.1', servername: 'localhost', ca: readFileSync(pki.ca) });
        const drip = setInterval(() => sock.writable && sock.write('X-Drip: 1\r\n'), 300);
        sock.on('secureConnect', () => sock.write('GET /spy-pixel.gif?campaign=x HTTP/1.1\r\nHost: a\r\n'));
        sock.on('data', (d) => { text += d; });
        sock.on('error', (e) => errors.push(e.code || e.message));
        sock.on('close', () => { clearInterval(drip); resolve({ text, errors }); });
      });
      assert.equal(inside.text, '');
      assert.deepEqual(inside.errors.filter((e) => !/ECONNRESET|EPIPE/.test(e)), [], 'bytes outside the TLS session');
      const ok = await httpsRequest(`${srv.https}/spy-pixel.gif?campaign=x`, { ca: pki.ca });
      assert.equal(ok.status, 200);
    } finally {
      await srv.stop();
    }
  });

  test('thousands of trickling connections from 127.0.0.2-5: a pixel from 127.0.0.1 is still answered', async () => {
    // 2,400 connections that each send a header line every 3 s (never idle for the 15 s
    // timeout) against a limit of 1,000; whatever the server closes is opened again.
    const srv = await startServer({ campaigns: ['loris'], flags: ['--max-connections', '1000'] });
    const socks = new Set();
    let stopping = false;
    const open = (i) => {
      if (stopping) return;
      const sock = net.connect({ port: srv.port, host: '127.0.0.1', localAddress: `127.0.0.${2 + (i % 4)}` });
      socks.add(sock);
      sock.on('connect', () => sock.write('GET /spy-pixel.gif?campaign=loris HTTP/1.1\r\nHost: a\r\n'));
      sock.on('data', () => {});
      sock.on('error', () => {});
      sock.on('close', () => { socks.delete(sock); setTimeout(() => open(i), 200); });
    };
    const drip = setInterval(() => { for (const s of socks) if (s.writable) s.write('X-Drip: 1\r\n'); }, 3000);
    try {
      for (let i = 0; i < 2400; i++) {
        open(i);
        if (i % 200 === 199) await sleep(50);
      }
      await sleep(1000);
      for (let i = 0; i < 4; i++) {
        const t0 = Date.now();
        const res = await request(`${srv.base}/spy-pixel.gif?campaign=loris&email=probe${i}`, { headers: { 'User-Agent': UA.thunderbird }, timeoutMs: 5000 });
        assertPixel(res, `probe ${i} (${Date.now() - t0} ms)`);
        await sleep(300);
      }
      const m = await srv.metrics();
      assert.ok(m.spypixel_http_shed_total + m.spypixel_http_address_refusals_total > 0, 'the trickling connections were held back');
    } finally {
      stopping = true;
      clearInterval(drip);
      for (const s of socks) s.destroy();
      await srv.stop();
    }
  });

  test('--max-connections-per-ip: connections past it from one address are refused, others served', async () => {
    const srv = await startServer({ campaigns: ['cap'], flags: ['--max-connections-per-ip', '20'] });
    const socks = [];
    try {
      let closed = 0;
      for (let i = 0; i < 30; i++) {
        const sock = net.connect({ port: srv.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
        sock.on('error', () => {});
        sock.on('close', () => { closed++; });
        socks.push(sock);
      }
      // 15 s: under the sanitizer build, after the thousands of connections of the test
      // before, the refusals once took longer than 5 s to come.
      await waitFor(() => closed >= 10, { timeoutMs: 15000, what: 'ten connections refused' });
      await sleep(300);
      assert.equal(closed, 10);
      assertPixel(await srv.pixel({ campaign: 'cap', email: 'other' }, { 'User-Agent': UA.thunderbird }, { localAddress: '127.0.0.3' }));
      assert.equal((await srv.metrics()).spypixel_http_address_refusals_total, 10);
    } finally {
      for (const s of socks) s.destroy();
      await srv.stop();
    }
  });
});

/** The server's request threads: libmicrohttpd's, one per daemon. */
function requestThreads(pid) {
  return readdirSync(`/proc/${pid}/task`).filter((t) => {
    try { return readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim() === 'MHD-single'; } catch { return false; }
  }).length;
}

describe('request threads', () => {
  test('one per core the server may run on (its CPU affinity), or --threads; each serves its share', async () => {
    const srv = await startServer({ campaigns: ['th'] });
    try {
      assert.equal(requestThreads(srv.pid), os.availableParallelism());
    } finally {
      await srv.stop();
    }
    const three = await startServer({ campaigns: ['th'], flags: ['--threads', '3'] });
    try {
      assert.equal(requestThreads(three.pid), 3);
      // Every connection is accepted by one of them and answered.
      const answers = await Promise.all(Array.from({ length: 24 }, (_, i) =>
        three.pixel({ campaign: 'th', email: `r${i}` }, { 'User-Agent': UA.thunderbird, Connection: 'close' })));
      for (const res of answers) assertPixel(res);
      await waitFor(async () => (await three.metrics()).spypixel_opens_recorded_total === 24, { timeoutMs: 10000, what: '24 opens indexed' });
    } finally {
      await three.stop();
    }
  });
});

describe('slow readers of uploaded images', () => {
  test('forty readers of an 8 MiB image that read nothing: memory grows by less than two copies', async () => {
    const srv = await startServer({ campaigns: ['img'] });
    const socks = [];
    try {
      const image = png(8 * MiB);
      const up = await srv.api('POST', '/images?campaign=img', image, { 'Content-Type': 'image/png' });
      assert.equal(up.status, 201, up.text);
      const p = new URL(up.json().url).pathname;
      const first = await srv.req(p);
      assert.ok(first.body.equals(image), 'the image comes back whole');
      await sleep(300);
      const before = rss(srv.pid);
      const mem = sampleMemory(srv.pid);
      for (let i = 0; i < 40; i++) {
        const sock = net.connect(srv.port, '127.0.0.1');
        sock.on('error', () => {});
        sock.on('connect', () => { sock.write(`GET ${p} HTTP/1.1\r\nHost: a\r\n\r\n`); sock.pause(); });
        socks.push(sock);
      }
      await sleep(1500);
      const peak = mem.stop();
      assert.ok(peak - before < 16 * MiB, `resident memory grew by ${((peak - before) / MiB).toFixed(1)} MiB over 40 readers (from ${(before / MiB).toFixed(1)})`);
      for (const s of socks) s.destroy();
      const again = await srv.req(p);
      assert.ok(again.body.equals(image), 'the shared copy is intact');
      await srv.indexed();
      assert.equal((await srv.events('img')).length >= 2, true);
    } finally {
      for (const s of socks) s.destroy();
      await srv.stop();
    }
  });
});

describe('request framing (RFC 9112)', () => {
  let srv;
  before(async () => { srv = await startServer({ campaigns: ['frame'] }); });
  after(async () => { await srv?.stop(); });
  const pixel = (email) => `GET /spy-pixel.gif?campaign=frame&email=${email} HTTP/1.1\r\nHost: a\r\n`;

  test('Content-Length with Transfer-Encoding is refused with 400 and the connection closes', async () => {
    for (const bytes of [
      'POST /api/v1/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      `${pixel('smuggle')}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n`,
    ]) {
      const r = await exchange(srv.port, bytes);
      assert.equal(r.status, 400, bytes);
      assert.ok(r.closed, `${bytes}: the connection must close`);
    }
  });

  test('two different Content-Length values are refused with 400; the same value twice is served', async () => {
    const bad = await exchange(srv.port, 'POST /api/v1/login HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 20\r\n\r\n{}');
    assert.equal(bad.status, 400);
    assert.ok(bad.closed);
    const same = await exchange(srv.port, `${pixel('twice')}Content-Length: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    assert.equal(same.status, 200);
  });

  test('a transfer coding other than chunked is refused with 501 and the connection closes', async () => {
    for (const coding of ['gzip', 'gzip, chunked', 'identity']) {
      const r = await exchange(srv.port, `POST /api/v1/login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ${coding}\r\n\r\n`);
      assert.equal(r.status, 501, coding);
      assert.ok(r.closed, coding);
    }
    const twice = await exchange(srv.port, 'POST /api/v1/login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n');
    assert.equal(twice.status, 400);
    const old = await exchange(srv.port, 'POST /api/v1/login HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    assert.equal(old.status, 400);
  });

  test('HTTP/1.1 without Host, or with two, is refused with 400; HTTP/1.0 without Host gets the pixel', async () => {
    const none = await exchange(srv.port, 'GET /spy-pixel.gif?campaign=frame&email=nohost HTTP/1.1\r\nUser-Agent: x\r\n\r\n');
    assert.equal(none.status, 400);
    const two = await exchange(srv.port, `${pixel('twohosts')}Host: b\r\n\r\n`);
    assert.equal(two.status, 400);
    const old = await exchange(srv.port, 'GET /spy-pixel.gif?campaign=frame&email=http10 HTTP/1.0\r\nUser-Agent: x\r\n\r\n');
    assert.equal(old.status, 200);
    assert.match(old.head, /content-type: image\/gif/i);
    assert.equal(Buffer.from(old.text, 'latin1').length, GIF_LENGTH);
  });
});

/** RFC 3986 appendix A: only these characters, '%' only before two hex digits, one '#'. */
function assertValidUrl(u) {
  assert.match(u, /^https?:\/\/[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/, `${JSON.stringify(u)} is not a valid URL`);
  assert.doesNotMatch(u, /%(?![0-9A-Fa-f]{2})/, `${u}: a '%' that starts no escape`);
  assert.ok(u.indexOf('#') === u.lastIndexOf('#'), `${u}: two '#'`);
}

describe('link targets are valid URLs', () => {
  let srv;
  before(async () => { srv = await startServer({ campaigns: ['lnk'] }); });
  after(async () => { await srv?.stop(); });

  test('targets with control characters, no host or a host that is not ASCII are refused with a reason', async () => {
    for (const [target, why] of [
      ['https://example.com/\u0001x', /control/],
      ['https://example.com/\u007f', /control/],
      ['https://', /no host/],
      ['https:///path', /no host/],
      ['http://:8080/x', /no host/],
      ['https://ex\u00e4mple.com/', /xn--/],
    ]) {
      const r = await srv.api('POST', '/links', { campaign: 'lnk', recipient: 'r', target });
      assert.equal(r.status, 400, `${JSON.stringify(target)}: ${r.status} ${r.text}`);
      assert.match(r.json().error, why, JSON.stringify(target));
    }
  });

  test('raw non-ASCII and other bytes are percent-encoded, and the redirect sends that URL', async () => {
    const r = await srv.apiOk('POST', '/links', { campaign: 'lnk', recipient: 'enc', target: 'https://example.com/caf\u00e9/{x}?q=\u00fc|1#\u00f6' });
    const res = await request(r.url, { headers: { 'User-Agent': UA.chrome } });
    assert.equal(res.status, 302);
    assert.equal(res.headers.location, 'https://example.com/caf%C3%A9/%7Bx%7D?q=%C3%BC%7C1#%C3%B6');
    assertValidUrl(res.headers.location);
  });

  test('links sealed before targets were checked never send an invalid Location', async () => {
    // Made by a server that took any target, under this key.
    const key = '0123456789abcdef'.repeat(4);
    const sealed = [
      ['https://example.com/\u0001x', 'RlJx4aF_YA8SW_YI7yeoByxHI-rodxHCqr522kTU0oyZphF-c2ePD1L4OZB2rMtzL1xthYhgNfzmKuQ9ZsiTB88vAbx3rpUaVMQ', null],
      ['https://', 'XM6V5GKS6Etu5Hm8s7ufc7mgWdWYZZ28hZWzHFmcNLkHJIMewFA7_MNMIu5tcrtSleXxfCccphbXquUB', null],
      ['https:///path', '9CDg1bnSEmfN2ByOUdyW_zIJ8RliXgfoW2AwCGK7hQjXITAJv4575TSq70ode070Pwd_SRe_TwndLAUiOAiVEVY', null],
      ['https://example.com/caf\u00e9?q=\u00fc#\u00f6', 'hcegI2JcRurEajKuUC86ChM0jU9wxSfnWx-u3sszhvuWwKYUtk8gdHSsK69fAmduhiw6kMsOWKnCqrbV-Mb3ade1vY1jptTl32DVlKCfLWpFIkTRJw', 'https://example.com/caf%C3%A9?q=%C3%BC#%C3%B6'],
      ['https://ex\u00e4mple.com/', 'jcpZWMFYFqoJO9ubl32EO2pdLCSwdHzt25lk8FDoHs0sxIAEwOBXgBcFc9DGxypuqlxtIZVY3fUNJuK1PV4rdfz-5401w8Y7Fw', null],
      ['https://example.com/a{b}|c\\d^e`f', '-tBjWQRmDICVT5cyfD3ZT6_d3DPWoNTJZnNnC6_YhzNlr2YK4vpSasSQ1u5LJA0ew2UBBdv3TaXARL_PpLrzClgt6nnCmaBDE7rXQz6ZK2_IQ2M4', 'https://example.com/a%7Bb%7D%7Cc%5Cd%5Ee%60f'],
      ['http://example.com/\u007f', 'A9fLY-ow3uZIxL_P4dtu7297r7cxfXk4IHG2udo7IhHh4NegcGRaigGSPcXclMNTIyRBJMjKoEJpEzum0-7mLwVWJOi2MX5h', null],
    ];
    const data = await prepareData({ campaigns: ['legacy'] });
    await sqlite(path.join(data.dataDir, 'spypixel.db'), `INSERT INTO meta(key, value) VALUES('secret_key', '${key}')`);
    const old = await startServer({ dataDir: data.dataDir, token: data.token });
    try {
      for (const [target, token, location] of sealed) {
        const res = await old.req(`/c/${token}`, { headers: { 'User-Agent': UA.chrome } });
        if (location) {
          assert.equal(res.status, 302, JSON.stringify(target));
          assert.equal(res.headers.location, location);
          assertValidUrl(res.headers.location);
        } else {
          assert.equal(res.status, 404, `${JSON.stringify(target)}: ${res.status} ${res.headers.location}`);
          assert.equal(res.headers.location, undefined);
        }
      }
    } finally {
      await old.stop();
    }
  });
});

describe('/metrics', () => {
  test('loopback clients and API tokens only, unless --metrics-public; /healthz stays public', async () => {
    // With a trusted proxy on loopback, X-Forwarded-For stands for a client elsewhere.
    const srv = await startServer({ flags: ['--trusted-proxy', '127.0.0.1/32'] });
    const away = { 'X-Forwarded-For': '203.0.113.9' };
    try {
      assert.equal((await srv.req('/metrics')).status, 200, 'a loopback client');
      const refused = await srv.req('/metrics', { headers: away });
      assert.equal(refused.status, 401);
      assert.equal(refused.headers['www-authenticate'], 'Bearer');
      assert.doesNotMatch(refused.text, /spypixel_/);
      assert.equal((await srv.req('/metrics', { headers: { ...away, Authorization: 'Bearer spt_wrong' } })).status, 401);
      const scraped = await srv.req('/metrics', { headers: { ...away, Authorization: `Bearer ${srv.token}` } });
      assert.equal(scraped.status, 200);
      assert.match(scraped.text, /spypixel_http_requests_total/);
      // A loopback peer that forwards for someone else, not named a trusted proxy.
      assert.equal((await srv.req('/metrics', { headers: away, localAddress: '127.0.0.2' })).status, 401);
      assert.equal((await srv.req('/healthz', { headers: away })).status, 200);
    } finally {
      await srv.stop();
    }
    const open = await startServer({ flags: ['--trusted-proxy', '127.0.0.1/32', '--metrics-public'] });
    try {
      assert.equal((await open.req('/metrics', { headers: away })).status, 200);
    } finally {
      await open.stop();
    }
  });
});
