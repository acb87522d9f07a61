// spypixel's own credentials never reach the data: a logged-in browser that loads a pixel
// sends the session and self-view cookies (and a client may send Authorization); the open
// is still the sender's own view, but the journal, the store, the API, the exports, the
// live stream and the webhooks keep only that they were there.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { UA, assertPixel, freePort, sqlite, startServer } from './harness.mjs';

const REMOVED = '[removed]';

let srv;
let hook;
const hooked = [];
let login;

before(async () => {
  hook = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      hooked.push(body);
      res.end('ok');
    });
  });
  const port = await freePort();
  await new Promise((r) => hook.listen(port, '127.0.0.1', r));
  srv = await startServer({ campaigns: ['creds'], flags: ['--webhook', `http://127.0.0.1:${port}/hook`] });
  login = await srv.login();
  assert.equal(login.res.status, 200, login.res.text);
});

after(async () => {
  await srv?.stop();
  await new Promise((r) => hook.close(r));
});

/** Every file under DIR, as one Buffer per file. */
async function filesUnder(dir) {
  const out = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...await filesUnder(p));
    else out.push({ path: p, bytes: await readFile(p) });
  }
  return out;
}

/** Opens the live stream of CAMPAIGN; resolves the first open's JSON once FIRE has run.
 * The event can reach the stream before FIRE's own await returns (the writer indexes behind the
 * answer), so it waits for both. */
function streamOne(campaign, fire) {
  let req;
  let fired;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no event on the stream within 10 s')), 10000);
    let buf = '';
    let seen = null;
    const done = (v) => { clearTimeout(timer); fired.then(() => resolve(v), reject); };
    req = http.get(`${srv.base}/api/v1/campaigns/${campaign}/stream`, { headers: { Authorization: `Bearer ${srv.token}` }, agent: false }, (res) => {
      if (res.statusCode !== 200) { clearTimeout(timer); reject(new Error(`stream: ${res.statusCode}`)); return; }
      res.setEncoding('utf8');
      res.on('data', (d) => {
        buf += d;
        const m = /(?:^|\n)event: open\ndata: (.*)\n\n/.exec(buf);
        if (m && !seen) { seen = { json: JSON.parse(m[1]), raw: buf }; done(seen); }
      });
      res.on('error', () => {});
      fired = fire();
      fired.catch(reject);
    });
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
  }).finally(() => req?.destroy());
}

describe('a logged-in browser loads a pixel', () => {
  let secrets;
  let stream;
  let answered;

  before(async () => {
    assert.ok(login.cookies.sp_session && login.cookies.sp_self, 'login set both cookies');
    secrets = {
      session: login.cookies.sp_session,
      self: login.cookies.sp_self,
      token: srv.token,
      csrf: login.csrf,
      proxy: 'cHJveHl1c2VyOnByb3h5cGFzc3dvcmQ=',
    };
    const headers = {
      'User-Agent': UA.chrome,
      Cookie: `theme=dark; sp_session=${secrets.session}; sp_self=${secrets.self}`,
      Authorization: `Bearer ${secrets.token}`,
      'Proxy-Authorization': `Basic ${secrets.proxy}`,
      'X-CSRF-Token': secrets.csrf,
    };
    stream = await streamOne('creds', async () => {
      answered = await srv.pixel({ campaign: 'creds', email: 'me@example.com' }, headers);
    });
    assertPixel(answered);
    await srv.indexed();
    const deadline = Date.now() + 5000;
    while (!hooked.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  });

  function assertNoSecret(what, text, except = []) {
    for (const [name, value] of Object.entries(secrets)) {
      if (except.includes(name)) continue;
      assert.ok(!text.includes(value), `${what} holds the ${name} secret`);
    }
  }

  test('the open is still the sender\'s own view', async () => {
    const [ev] = await srv.events('creds', '?limit=1');
    assert.equal(ev.class, 'self');
    assert.equal(ev.rule, 'self-cookie');
    const c = await srv.campaign('creds');
    assert.equal(c.total_views, 0);
    assert.equal(c.by_class.self, 1);
  });

  test('the event keeps the cookies and headers by name, without their values', async () => {
    const [ev] = await srv.events('creds', '?limit=1');
    assert.deepEqual(ev.cookies, { theme: 'dark', sp_session: REMOVED, sp_self: REMOVED });
    const h = Object.fromEntries(Object.entries(ev.headers).map(([k, v]) => [k.toLowerCase(), v]));
    assert.equal(h.authorization, REMOVED);
    assert.equal(h['proxy-authorization'], REMOVED);
    assert.equal(h['x-csrf-token'], REMOVED);
    assert.equal(h.cookie, `theme=dark; sp_session=${REMOVED}; sp_self=${REMOVED}`);
    assert.equal(h['user-agent'], UA.chrome);
  });

  test('no secret in the events JSON, the CSV and JSON exports, the stream or the webhook', async () => {
    assertNoSecret('events', (await srv.api('GET', '/campaigns/creds/events')).text);
    const csv = await srv.api('GET', '/campaigns/creds/events.csv');
    assert.equal(csv.status, 200);
    assert.ok(csv.text.includes(REMOVED), 'the CSV names the removed values');
    assertNoSecret('events.csv', csv.text);
    const json = await srv.api('GET', '/campaigns/creds/events.json');
    assert.equal(json.status, 200);
    assertNoSecret('events.json', json.text);
    assertNoSecret('the live stream', stream.raw);
    assert.equal(stream.json.cookies.sp_session, REMOVED);
    assert.ok(hooked.length >= 1, 'no webhook POST within 5 s');
    for (const body of hooked) assertNoSecret('a webhook', body);
    assert.ok(hooked.some((b) => b.includes(REMOVED)), 'the webhook names the removed values');
  });

  test('no secret in the data folder: journal, store, WAL', async () => {
    const files = await filesUnder(srv.dataDir);
    assert.ok(files.some((f) => f.path.endsWith('.jnl')), 'a journal segment');
    // The sessions table keeps each session's CSRF token to compare: not a secret alone.
    for (const f of files) assertNoSecret(f.path, f.bytes.toString('latin1'), ['csrf']);
    const rows = await sqlite(path.join(srv.dataDir, 'spypixel.db'), 'SELECT cookies, headers, header_addrs, (SELECT text FROM header_sets WHERE id = header_set) FROM events');
    assert.ok(rows.includes(REMOVED));
    assertNoSecret('the events table', rows);
  });

  test('what an export holds does not open the API', async () => {
    const [ev] = JSON.parse((await srv.api('GET', '/campaigns/creds/events.json')).text);
    const tries = [
      { Cookie: `sp_session=${ev.cookies.sp_session}` },
      { Cookie: ev.headers.Cookie },
      { Authorization: ev.headers.Authorization },
      { Authorization: `Bearer ${ev.headers.Authorization}` },
    ];
    for (const headers of tries) {
      const r = await srv.req('/api/v1/me', { headers });
      assert.equal(r.status, 401, JSON.stringify(headers));
    }
    // The real ones still work: nothing was revoked, only not kept.
    assert.equal((await srv.req('/api/v1/me', { headers: { Cookie: `sp_session=${secrets.session}` } })).status, 200);
  });
});
