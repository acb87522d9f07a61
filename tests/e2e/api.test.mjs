// The JSON API: authentication (bearer token, session + CSRF, login limiter), campaigns,
// per-recipient and event paging, CSV/JSON export, the live stream, security headers.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { UA, assertPixel, parseCsv, startServer, waitFor } from './harness.mjs';

let srv;
before(async () => {
  srv = await startServer({ campaigns: ['main', 'page'] });
});
after(async () => {
  await srv?.stop();
});

const human = { 'User-Agent': UA.thunderbird };

function assertJsonError(r, status, what) {
  assert.equal(r.status, status, `${what}: ${r.status} ${r.text}`);
  assert.match(r.headers['content-type'] || '', /^application\/json/, `${what}: JSON`);
  assert.equal(typeof r.json().error, 'string', `${what}: {"error": "..."}`);
  assert.equal(r.headers['x-content-type-options'], 'nosniff', `${what}: nosniff`);
}


describe('authentication', () => {
  const endpoints = [
    ['GET', '/api/v1/campaigns'],
    ['POST', '/api/v1/campaigns', { id: 'sneaky' }],
    ['GET', '/api/v1/campaigns/main'],
    ['GET', '/api/v1/campaigns/main/events'],
    ['GET', '/api/v1/campaigns/main/events.csv'],
    ['GET', '/api/v1/campaigns/main/events.json'],
    ['GET', '/api/v1/campaigns/main/stream'],
    ['POST', '/api/v1/pixels', { campaign: 'main', recipient: 'x' }],
    ['POST', '/api/v1/links', { campaign: 'main', recipient: 'x', target: 'https://example.com/' }],
    ['GET', '/api/v1/me'],
    ['DELETE', '/api/v1/recipients/alice'],
  ];

  test('every API call without credentials is 401 with a JSON error', async () => {
    for (const [method, p, body] of endpoints) {
      assertJsonError(await srv.req(p, { method, body }), 401, `${method} ${p}`);
    }
    const list = await srv.apiOk('GET', '/campaigns');
    assert.ok(!list.some((c) => c.id === 'sneaky'), 'nothing created without credentials');
  });

  test('a wrong bearer token or session cookie is 401', async () => {
    const bad = [
      { Authorization: 'Bearer spt_wrong' },
      { Authorization: `Bearer ${srv.token}x` },
      { Authorization: `Bearer ${srv.token.slice(0, -1)}` },
      { Authorization: 'Bearer ' },
      { Authorization: `Basic ${Buffer.from('admin:correct horse battery staple').toString('base64')}` },
      { Cookie: 'sp_session=forged' },
      { Cookie: `sp_session=${srv.token}` },
    ];
    for (const headers of bad) assertJsonError(await srv.req('/api/v1/campaigns', { headers }), 401, JSON.stringify(headers));
  });

  test('login: wrong password or unknown user is 401; malformed is 400', async () => {
    assertJsonError(await srv.req('/api/v1/login', { method: 'POST', body: { user: srv.user, password: 'wrong password' } }), 401, 'wrong password');
    assertJsonError(await srv.req('/api/v1/login', { method: 'POST', body: { user: 'nobody', password: 'wrong password' } }), 401, 'unknown user');
    assertJsonError(await srv.req('/api/v1/login', { method: 'POST', body: '{"user":' }), 400, 'malformed JSON');
    assertJsonError(await srv.req('/api/v1/login', { method: 'POST', body: { user: srv.user } }), 400, 'no password');
  });

  test('session: /me, CSRF on session POSTs (403 without or wrong), none for bearer; logout ends it', async () => {
    const l = await srv.login();
    assert.equal(l.res.status, 200, l.res.text);
    assert.equal(typeof l.csrf, 'string');
    assert.ok(l.csrf.length >= 16);
    const cookie = `sp_session=${l.cookies.sp_session}`;

    const me = await srv.req('/api/v1/me', { headers: { Cookie: cookie } });
    assert.equal(me.status, 200);
    assert.equal(me.json().user, srv.user);
    const meBearer = await srv.api('GET', '/me');
    assert.equal(meBearer.status, 200);

    // Reading with the session needs no CSRF token.
    assert.equal((await srv.req('/api/v1/campaigns', { headers: { Cookie: cookie } })).status, 200);

    assertJsonError(await srv.req('/api/v1/campaigns', { method: 'POST', body: { id: 'csrf1' }, headers: { Cookie: cookie } }), 403, 'no X-CSRF-Token');
    assertJsonError(await srv.req('/api/v1/campaigns', { method: 'POST', body: { id: 'csrf1' }, headers: { Cookie: cookie, 'X-CSRF-Token': `${l.csrf}x` } }), 403, 'wrong X-CSRF-Token');
    assertJsonError(await srv.req('/api/v1/campaigns', { method: 'POST', body: { id: 'csrf1' }, headers: { Cookie: cookie, 'X-CSRF-Token': '' } }), 403, 'empty X-CSRF-Token');
    assertJsonError(await srv.req('/api/v1/recipients/nobody', { method: 'DELETE', headers: { Cookie: cookie } }), 403, 'DELETE without X-CSRF-Token');
    assert.equal((await srv.api('GET', '/campaigns/csrf1')).status, 404, 'refused POSTs created nothing');

    const ok = await srv.req('/api/v1/campaigns', { method: 'POST', body: { id: 'csrf1' }, headers: { Cookie: cookie, 'X-CSRF-Token': l.csrf } });
    assert.equal(ok.status, 201, ok.text);
    const bearer = await srv.api('POST', '/campaigns', { id: 'csrf2' });
    assert.equal(bearer.status, 201, 'a bearer token needs no CSRF token');

    // Another session's CSRF token does not fit this session.
    const l2 = await srv.login();
    assertJsonError(await srv.req('/api/v1/campaigns', { method: 'POST', body: { id: 'csrf3' }, headers: { Cookie: cookie, 'X-CSRF-Token': l2.csrf } }), 403, "another session's CSRF token");

    const out = await srv.req('/api/v1/logout', { method: 'POST', headers: { Cookie: cookie, 'X-CSRF-Token': l.csrf } });
    assert.ok(out.status === 200 || out.status === 204, `logout ${out.status}`);
    assertJsonError(await srv.req('/api/v1/me', { headers: { Cookie: cookie } }), 401, 'after logout');
    assert.equal((await srv.req('/api/v1/me', { headers: { Cookie: `sp_session=${l2.cookies.sp_session}` } })).status, 200, 'other sessions stay');
  });
});

describe('campaigns', () => {
  test('POST /api/v1/campaigns: 201 new, 200 existing, 400 bad ID or JSON', async () => {
    const a = await srv.api('POST', '/campaigns', { id: 'fresh-1' });
    assert.equal(a.status, 201);
    assert.equal(a.json().id, 'fresh-1');
    const b = await srv.api('POST', '/campaigns', { id: 'fresh-1' });
    assert.equal(b.status, 200);
    for (const body of [{ id: 'bad id' }, { id: '<script>' }, { id: '' }, { id: 'x'.repeat(129) }, { id: 7 }, {}, [], 'null', '{"id":"a"', 'not json', '{"id":"a","id":"b"}']) {
      assertJsonError(await srv.api('POST', '/campaigns', body), 400, `body ${JSON.stringify(body)}`);
    }
    assertJsonError(await srv.req('/api/v1/campaigns', { method: 'POST', headers: { Authorization: `Bearer ${srv.token}` } }), 400, 'empty body');
  });

  test('GET /api/v1/campaigns lists id, total_views, unique_views, last_view_at', async () => {
    assertPixel(await srv.pixel({ campaign: 'main', email: 'lister' }, human));
    const list = await srv.apiOk('GET', '/campaigns');
    assert.ok(Array.isArray(list));
    const main = list.find((c) => c.id === 'main');
    assert.ok(main);
    for (const k of ['id', 'total_views', 'unique_views', 'last_view_at']) assert.ok(k in main, k);
    assert.ok(main.total_views >= 1);
    assert.ok(Math.abs(Date.parse(main.last_view_at) - Date.now()) < 60000, 'last_view_at is a recent time');
    const fresh = list.find((c) => c.id === 'fresh-1');
    assert.equal(fresh.total_views, 0);
    assert.equal(fresh.last_view_at, null);
  });

  test('GET /api/v1/campaigns/ID: 404 unknown, 400 bad ID', async () => {
    assertJsonError(await srv.api('GET', '/campaigns/nope'), 404, 'unknown');
    assertJsonError(await srv.api('GET', '/campaigns/nope/events'), 404, 'unknown events');
    assertJsonError(await srv.api('GET', '/campaigns/nope/events.csv'), 404, 'unknown csv');
    assert.ok([400, 404].includes((await srv.api('GET', '/campaigns/%3Cscript%3E')).status));
  });

  test('per_recipient pages with limit and after, in recipient order', async () => {
    const names = ['r-e', 'r-a', 'r-d', 'r-b', 'r-c'];
    for (const r of names) assertPixel(await srv.pixel({ campaign: 'page', email: r }, human));
    assertPixel(await srv.pixel({ campaign: 'page', email: 'r-a' }, human));
    const full = await srv.campaign('page');
    assert.deepEqual(full.per_recipient.map((r) => r.recipient), [...names].sort());
    assert.equal(full.per_recipient.find((r) => r.recipient === 'r-a').views, 2);
    for (const k of ['id', 'total_views', 'unique_views', 'by_class', 'per_recipient']) assert.ok(k in full, k);
    assert.deepEqual(Object.keys(full.by_class).sort(), ['human', 'machine', 'proxy', 'self']);

    const seen = [];
    let after;
    for (let i = 0; i < 5; i++) {
      const q = `?limit=2${after ? `&after=${encodeURIComponent(after)}` : ''}`;
      const p = await srv.campaign('page', q);
      assert.ok(p.per_recipient.length <= 2);
      seen.push(...p.per_recipient.map((r) => r.recipient));
      after = p.next_after;
      if (!after) break;
    }
    assert.deepEqual(seen, [...names].sort(), 'the pages together list every recipient once');
    assert.equal((await srv.campaign('page', '?limit=100000')).per_recipient.length, 5);
    for (const bad of ['0', '-1', '100001', 'abc', '1.5', '']) {
      assertJsonError(await srv.api('GET', `/campaigns/page?limit=${bad}`), 400, `limit=${bad}`);
    }
  });

  test('events: newest first, every field of the contract, paged with limit and before', async () => {
    const evs = await srv.events('page');
    assert.equal(evs.length, 6);
    for (let i = 1; i < evs.length; i++) assert.ok(evs[i - 1].id > evs[i].id, 'newest first');
    const fields = ['id', 'ts', 'kind', 'recipient', 'ip', 'user_agent', 'browser', 'os', 'device', 'arch', 'country', 'city', 'via', 'class', 'cookies', 'headers', 'referer'];
    for (const f of fields) assert.ok(f in evs[0], `field ${f}`);
    assert.equal(typeof evs[0].cookies, 'object');
    assert.ok(!Array.isArray(evs[0].cookies) && evs[0].cookies !== null);
    assert.equal(typeof evs[0].headers, 'object');
    assert.equal(evs[0].headers['User-Agent'] ?? evs[0].headers['user-agent'], UA.thunderbird);
    assert.equal(evs[0].recipient, 'r-a');

    const p1 = await srv.events('page', '?limit=4');
    assert.deepEqual(p1.map((e) => e.id), evs.slice(0, 4).map((e) => e.id));
    const p2 = await srv.events('page', `?limit=4&before=${p1[3].id}`);
    assert.deepEqual(p2.map((e) => e.id), evs.slice(4).map((e) => e.id));
    assert.deepEqual(await srv.events('page', `?before=${evs[5].id}`), []);
    for (const q of ['?limit=0', '?limit=100001', '?limit=x', '?before=x', '?before=-5']) {
      assertJsonError(await srv.api('GET', `/campaigns/page/events${q}`), 400, q);
    }
  });

  test('events.csv: a text/csv attachment, a header row and one row per event, safe from formula injection', async () => {
    await srv.apiOk('POST', '/campaigns', { id: 'csv' });
    const hostile = [
      ['+cmd', '=HYPERLINK("http://evil.example","x")'],
      ['-2+3', '@SUM(1,2)'],
      ['@me', '+1+1'],
      ['plain', 'a "quoted", comma\tand tab'],
    ];
    for (const [email, ua] of hostile) assertPixel(await srv.pixel({ campaign: 'csv', email }, { 'User-Agent': ua, Referer: '=cmd|calc' }));
    const r = await srv.api('GET', '/campaigns/csv/events.csv');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/csv/);
    assert.match(r.headers['content-disposition'] || '', /^attachment/);
    const rows = parseCsv(r.text);
    const head = rows[0];
    for (const c of ['id', 'ts', 'recipient', 'user_agent', 'class']) assert.ok(head.includes(c), `column ${c}`);
    assert.equal(rows.length, 1 + hostile.length);
    for (const row of rows.slice(1)) {
      assert.equal(row.length, head.length, 'every row has every column');
      for (const cell of row) assert.ok(!/^[=+\-@\t\r]/.test(cell), `cell ${JSON.stringify(cell)} could run as a formula`);
    }
    const byRecipient = (r0) => rows.slice(1).find((row) => row[head.indexOf('recipient')].endsWith(r0));
    assert.ok(byRecipient('plain')[head.indexOf('user_agent')].includes('a "quoted", comma'), 'quotes and commas survive');
    assert.ok(byRecipient('+cmd')[head.indexOf('user_agent')].includes('HYPERLINK("http://evil.example","x")'), 'the text is kept, only defused');
  });

  test('events.json: a JSON attachment of every event', async () => {
    const r = await srv.api('GET', '/campaigns/csv/events.json');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.match(r.headers['content-disposition'] || '', /^attachment/);
    const arr = r.json();
    assert.equal(arr.length, 4);
    assert.deepEqual(arr.map((e) => e.id), (await srv.events('csv')).map((e) => e.id));
  });
});

describe('exports of many pages', () => {
  test('events.json and events.csv hold every event of a campaign read over several store pages, in order, as the events API shows them', async () => {
    await srv.apiOk('POST', '/campaigns', { id: 'big' });
    const n = 8345; // the export reads the store 4,000 events at a time
    let next = 0;
    const worker = async () => {
      while (next < n) {
        const i = next++;
        assertPixel(await srv.pixel({ campaign: 'big', email: `r${i}@example.com` }, { 'User-Agent': `agent ${i % 7}` }));
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    let all;
    await waitFor(async () => (all = await srv.events('big', '?limit=100000')).length === n, { what: `${n} events indexed` });
    const json = await srv.api('GET', '/campaigns/big/events.json');
    assert.equal(json.status, 200);
    assert.deepEqual(json.json(), all);
    const csv = await srv.api('GET', '/campaigns/big/events.csv');
    assert.equal(csv.status, 200);
    const rows = parseCsv(csv.text);
    const id = rows[0].indexOf('id');
    assert.equal(rows.length, 1 + n);
    assert.deepEqual(rows.slice(1).map((r) => Number(r[id])), all.map((e) => e.id));
    // limit and before as the events API takes them, across a page's end.
    const part = await srv.api('GET', `/campaigns/big/events.json?limit=4100&before=${all[10].id}`);
    assert.deepEqual(part.json(), all.slice(11, 4111));
    const tail = await srv.api('GET', `/campaigns/big/events.csv?before=${all[n - 3].id}`);
    assert.deepEqual(parseCsv(tail.text).slice(1).map((r) => Number(r[id])), all.slice(n - 2).map((e) => e.id));
    const none = await srv.api('GET', `/campaigns/big/events.json?before=${all[n - 1].id}`);
    assert.equal(none.text, '[]');
  });
});

describe('live stream', () => {
  test('GET /api/v1/campaigns/ID/stream sends an "open" event with the event JSON after a pixel', async () => {
    await srv.apiOk('POST', '/campaigns', { id: 'live' });
    let req;
    const got = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no "event: open" within 10 s')), 10000);
      let buf = '';
      req = http.get(`${srv.base}/api/v1/campaigns/live/stream`, { headers: { Authorization: `Bearer ${srv.token}`, Accept: 'text/event-stream' }, agent: false }, (res) => {
        if (res.statusCode !== 200) { clearTimeout(timer); reject(new Error(`stream: ${res.statusCode}`)); return; }
        assert.match(res.headers['content-type'], /^text\/event-stream/);
        res.setEncoding('utf8');
        res.on('data', (d) => {
          buf += d;
          const m = /(?:^|\n)event: open\ndata: (.*)\n\n/.exec(buf);
          if (m) { clearTimeout(timer); resolve(JSON.parse(m[1])); }
        });
        res.on('error', () => {});
        // The stream is open: make the open (twice: a subscriber registered late would miss the first).
        (async () => {
          await srv.pixel({ campaign: 'other-campaign-does-not-exist', email: 'no' }, human);
          await srv.pixel({ campaign: 'live', email: 'streamed' }, human);
        })().catch(reject);
      });
      req.on('error', (e) => { clearTimeout(timer); reject(e); });
    }).finally(() => req?.destroy());
    assert.equal(got.recipient, 'streamed');
    assert.equal(got.class, 'human');
    assert.equal(typeof got.id, 'number');
  });
});

describe('security headers', () => {
  test('API answers carry X-Content-Type-Options: nosniff', async () => {
    for (const p of ['/campaigns', '/campaigns/main', '/campaigns/main/events', '/me', '/campaigns/nope']) {
      const r = await srv.api('GET', p);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', p);
    }
    assert.equal((await srv.req('/healthz')).headers['x-content-type-options'], 'nosniff', '/healthz');
  });

  test("the dashboard's CSP has no 'unsafe-inline' scripts and frame-ancestors 'none'", async () => {
    const r = await srv.req('/');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/html/);
    const csp = r.headers['content-security-policy'];
    assert.ok(csp, 'Content-Security-Policy');
    const directives = Object.fromEntries(csp.split(';').map((d) => d.trim()).filter(Boolean).map((d) => {
      const [k, ...v] = d.split(/\s+/);
      return [k.toLowerCase(), v];
    }));
    const scriptSrc = directives['script-src'] || directives['default-src'];
    assert.ok(scriptSrc, 'script-src or default-src');
    assert.ok(!scriptSrc.includes("'unsafe-inline'"), 'no unsafe-inline scripts');
    assert.ok(!scriptSrc.includes("'unsafe-eval'"), 'no unsafe-eval');
    assert.deepEqual(directives['frame-ancestors'], ["'none'"]);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
  });
});

describe('login limiter', () => {
  test('after 5 failed logins the next answer is 429 with Retry-After', async () => {
    const s = await startServer({ user: 'limited' });
    try {
      for (let i = 0; i < 5; i++) {
        const r = await s.login('limited', `wrong-${i}-password`);
        assert.equal(r.res.status, 401, `attempt ${i + 1}`);
      }
      const r = await s.login('limited', 'wrong-again-password');
      assert.equal(r.res.status, 429);
      const retry = Number(r.res.headers['retry-after']);
      assert.ok(Number.isInteger(retry) && retry > 0 && retry <= 24 * 3600, `Retry-After ${r.res.headers['retry-after']}`);
      assert.equal(typeof r.res.json().error, 'string');
      assert.equal(r.cookies.sp_session, undefined, 'no session');
      const m = await s.metrics();
      assert.ok(m.spypixel_login_failures_total >= 5);
    } finally {
      await s.stop();
    }
  });
  // Per account, per address and the known-browser cookie: login.test.mjs.
});
