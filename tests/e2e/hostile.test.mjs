// Hostile requests: markup and quotes in headers, oversized values, bytes that are not
// UTF-8, too many headers, huge query strings. The pixel still answers, the stored event
// comes back as valid JSON, and the server keeps serving.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { GIF_LENGTH, UA, assertPixel, rawRequest, startServer } from './harness.mjs';

let srv;
before(async () => {
  srv = await startServer({ campaigns: ['evil'] });
});
after(async () => {
  await srv?.stop();
});

function header(ev, name) {
  const k = Object.keys(ev.headers).find((h) => h.toLowerCase() === name.toLowerCase());
  return k === undefined ? undefined : ev.headers[k];
}

async function latest(email) {
  const [ev] = await srv.events('evil', '?limit=1');
  assert.equal(ev?.recipient, email, `the open of ${email} is the latest event`);
  return ev;
}

async function stillServing() {
  const r = await srv.req('/healthz');
  assert.equal(r.status, 200);
  assertPixel(await srv.pixel({ campaign: 'evil', email: 'alive' }, { 'User-Agent': UA.thunderbird }));
}

describe('hostile input', () => {
  test('markup, quotes and backslashes in headers come back unchanged inside valid JSON', async () => {
    const ua = `${UA.chrome} <script>alert("x")</script> \\"}],{'`;
    const ref = 'https://mail.example.com/"><img src=x onerror=alert(1)>';
    const cookie = 'a="<b>"; c=\\"; d=\'x\'; e=</script>';
    const res = await srv.pixel({ campaign: 'evil', email: 'markup' }, { 'User-Agent': ua, Referer: ref, Cookie: cookie, 'X-Evil': '{"json":"inside"}' });
    assertPixel(res);
    const raw = await srv.api('GET', '/campaigns/evil/events?limit=1');
    assert.match(raw.headers['content-type'], /^application\/json/);
    const [ev] = raw.json();
    assert.equal(ev.user_agent, ua);
    assert.equal(ev.referer, ref);
    assert.equal(header(ev, 'Cookie'), cookie);
    assert.equal(header(ev, 'X-Evil'), '{"json":"inside"}');
    assert.equal(typeof ev.cookies, 'object');
  });

  test('long user agents (800 B to 8 KB) do not crash the server', async () => {
    for (const n of [800, 1023, 1024, 1025, 2000, 4096, 8000]) {
      const ua = `Mozilla/5.0 (X11; Linux x86_64) ${'A'.repeat(n)}`;
      const res = await srv.pixel({ campaign: 'evil', email: `ua${n}` }, { 'User-Agent': ua, 'Sec-CH-UA-Model': '"x"'.repeat(n > 2000 ? 10 : 1) });
      assertPixel(res, `${n} bytes`);
      const ev = await latest(`ua${n}`);
      assert.equal(typeof ev.browser, 'string');
    }
    await stillServing();
  });

  test('a 6 KB header value is stored cut to 4096 bytes', async () => {
    const big = `${UA.thunderbird} ${'A'.repeat(6000)}`;
    const huge = 'B'.repeat(6000);
    assertPixel(await srv.pixel({ campaign: 'evil', email: 'big' }, { 'User-Agent': big, 'X-Huge': huge }));
    const ev = await latest('big');
    assert.equal(header(ev, 'X-Huge').length, 4096);
    assert.equal(header(ev, 'X-Huge'), huge.slice(0, 4096));
    assert.ok(ev.user_agent.length <= 4096, `user_agent ${ev.user_agent.length} bytes`);
    assert.equal(ev.user_agent, big.slice(0, ev.user_agent.length));
  });

  test('header bytes that are not UTF-8 (raw socket) are stored and returned as valid JSON strings', async () => {
    const head = Buffer.concat([
      Buffer.from('GET /spy-pixel.gif?campaign=evil&email=bytes HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Mozilla/5.0 '),
      Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82, 0x80, 0x22, 0x5c]),
      Buffer.from('\r\nReferer: http://x.example/'),
      Buffer.from([0xc0, 0xaf, 0xed, 0xa0, 0x80]),
      Buffer.from('\r\nCookie: k='),
      Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]),
      Buffer.from('\r\nX-Latin1: caf'),
      Buffer.from([0xe9]),
      Buffer.from('\r\nConnection: close\r\n\r\n'),
    ]);
    const r = await rawRequest(srv.port, head);
    assert.equal(r.status, 200);
    assert.equal(r.body.length, GIF_LENGTH);
    const raw = await srv.api('GET', '/campaigns/evil/events?limit=1');
    const [ev] = raw.json();
    assert.equal(ev.recipient, 'bytes');
    assert.equal(typeof ev.user_agent, 'string');
    assert.ok(ev.user_agent.startsWith('Mozilla/5.0 '));
    assert.equal(typeof ev.referer, 'string');
    assert.equal(typeof header(ev, 'X-Latin1'), 'string');
    assert.ok(header(ev, 'X-Latin1').startsWith('caf'));
    assert.equal(typeof ev.cookies, 'object');
    // The other exports too.
    const csv = await srv.api('GET', '/campaigns/evil/events.csv');
    assert.equal(csv.status, 200);
    const json = await srv.api('GET', '/campaigns/evil/events.json');
    assert.equal(json.status, 200);
    assert.ok(Array.isArray(json.json()));
    const list = await srv.apiOk('GET', '/campaigns/evil');
    assert.equal(list.id, 'evil');
  });

  test('events.csv stays valid UTF-8 (as its charset says) when headers held other bytes', async () => {
    const head = Buffer.concat([
      Buffer.from('GET /spy-pixel.gif?campaign=evil&email=csvbytes HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Mozilla/5.0 '),
      Buffer.from([0xff, 0xfe, 0xc3, 0x28]),
      Buffer.from('\r\nConnection: close\r\n\r\n'),
    ]);
    assert.equal((await rawRequest(srv.port, head)).status, 200);
    const csv = await srv.api('GET', '/campaigns/evil/events.csv');
    assert.equal(csv.status, 200);
    assert.match(csv.headers['content-type'], /charset=utf-8/i);
    assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(csv.body), 'events.csv says UTF-8 but holds other bytes');
  });

  test('70 headers: the open is recorded with 64 of them', async () => {
    const headers = [['User-Agent', UA.thunderbird]];
    for (let i = 0; i < 70; i++) headers.push([`X-Many-${String(i).padStart(2, '0')}`, `v${i}`]);
    assertPixel(await srv.pixel({ campaign: 'evil', email: 'many' }, headers));
    const ev = await latest('many');
    assert.equal(Object.keys(ev.headers).length, 64);
    assert.equal(ev.user_agent, UA.thunderbird);
    await stillServing();
  });

  test('a long repeated header (300 × Cookie lines) does not break the event', async () => {
    const headers = [['User-Agent', UA.thunderbird]];
    for (let i = 0; i < 300; i++) headers.push(['X-Rep', `value-${i}`]);
    const res = await srv.pixel({ campaign: 'evil', email: 'repeat' }, headers).catch((e) => ({ error: e }));
    if (!res.error) assert.ok([200, 400, 413, 431].includes(res.status), `status ${res.status}`);
    await srv.events('evil', '?limit=5');
    await stillServing();
  });

  test('a 12 KB query string still gets the GIF and records the open', async () => {
    const q = `campaign=evil&email=longq&junk=${'j'.repeat(12000)}`;
    assertPixel(await srv.pixel(q, { 'User-Agent': UA.thunderbird }));
    await latest('longq');
  });

  test('a 20 KB request line is refused with 414 (16 KiB per connection), and the server keeps serving', async () => {
    const q = `campaign=evil&email=longer&junk=${'j'.repeat(20000)}`;
    const r = await srv.pixel(q, { 'User-Agent': UA.thunderbird });
    assert.equal(r.status, 414);
    await stillServing();
  });

  test('a 1 MB request line or header is refused, and the server keeps serving', async () => {
    const long = `GET /spy-pixel.gif?campaign=evil&email=huge&x=${'x'.repeat(1 << 20)} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`;
    const r1 = await rawRequest(srv.port, long).catch((e) => ({ error: e }));
    if (!r1.error && r1.status !== null) assert.ok(r1.status === 200 || r1.status >= 400, `status ${r1.status}`);
    const bigHead = `GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: ${'y'.repeat(1 << 20)}\r\nConnection: close\r\n\r\n`;
    await rawRequest(srv.port, bigHead).catch(() => null);
    await stillServing();
  });

  test('garbage and half requests do not stop the server', async () => {
    const junk = [
      Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), // a TLS hello
      'GET /spy-pixel.gif?campaign=evil HTTP/9.9\r\n\r\n',
      'GET\r\n\r\n',
      'BREW /spy-pixel.gif HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
      'GET /spy-pixel.gif?campaign=evil&email=half HTTP/1.1\r\nHost: a\r\nUser-Agent: half',
      'POST /api/v1/login HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000\r\n\r\n{"user":',
      'GET /../../../../etc/passwd HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    ];
    for (const j of junk) {
      const r = await rawRequest(srv.port, j, { timeoutMs: 700 }).catch(() => null);
      if (r && r.raw.includes('root:x:0:0')) assert.fail('path traversal');
    }
    await stillServing();
  });

  test('a body whose JSON error falls inside a character gets a 400, and the server keeps serving', async () => {
    // A broken \u escape just before a two-byte character: jansson's message quotes the body
    // up to the error, that is half of the character.
    const body = Buffer.concat([Buffer.from('{"user":"caf\\u0'), Buffer.from([0xd0, 0x96]), Buffer.from('9","password":"x"}')]);
    for (const p of ['/login', '/campaigns', '/pixels', '/links']) {
      const r = await srv.api('POST', p, body);
      assert.equal(r.status, 400, `POST ${p}: ${r.status}`);
      assert.match(r.json().error, /^malformed JSON at line 1: /, `POST ${p}`);
    }
    await stillServing();
  });

  test('a hostile campaign path in the API is refused, not echoed', async () => {
    for (const p of ['/campaigns/%3Cscript%3E', '/campaigns/a%22b/events', `/campaigns/${'x'.repeat(300)}`, '/campaigns/..%2F..%2Fetc']) {
      const r = await srv.api('GET', p);
      assert.ok([400, 404].includes(r.status), `${p}: ${r.status}`);
      assert.ok(!r.text.includes('<script>'));
      assert.equal(typeof r.json().error, 'string');
    }
  });

  test('a percent-encoded NUL in an API path does not stand for a shorter ID', async () => {
    assertPixel(await srv.pixel({ campaign: 'evil', email: 'nul-victim' }, { 'User-Agent': UA.thunderbird }));
    const c = await srv.api('GET', '/campaigns/evil%00other');
    assert.notEqual(c.status, 200, 'GET /campaigns/evil%00other answered campaign "evil"');
    const del = await srv.api('DELETE', '/recipients/nul-victim%00x');
    assert.notEqual(del.status, 200, 'DELETE /recipients/nul-victim%00x answered 200');
    const evs = await srv.events('evil');
    assert.ok(evs.some((e) => e.recipient === 'nul-victim'), 'DELETE /recipients/nul-victim%00x erased nul-victim');
  });
});
