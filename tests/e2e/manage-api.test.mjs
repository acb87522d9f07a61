// Managing campaigns through the API: archive (and list by it), delete with its events; the
// session's CSRF token as for every change.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { UA, startServer } from './harness.mjs';

let srv;
before(async () => {
  srv = await startServer({ campaigns: ['keep', 'shelve', 'gone'] });
});
after(async () => {
  await srv?.stop();
});

const ids = (list) => list.map((c) => c.id).sort();

test('PATCH archives a campaign and brings it back; the list filters by it', async () => {
  let r = await srv.api('PATCH', '/campaigns/shelve', { archived: true });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json(), { id: 'shelve', archived: true });
  assert.equal((await srv.campaign('shelve')).archived, true);
  const all = await srv.apiOk('GET', '/campaigns');
  assert.equal(all.find((c) => c.id === 'shelve').archived, true);
  assert.equal(all.find((c) => c.id === 'keep').archived, false);
  assert.deepEqual(ids(await srv.apiOk('GET', '/campaigns?archived=1')), ['shelve']);
  assert.deepEqual(ids(await srv.apiOk('GET', '/campaigns?archived=0')), ['gone', 'keep']);
  assert.equal((await srv.api('GET', '/campaigns?archived=maybe')).status, 400);
  r = await srv.api('PATCH', '/campaigns/shelve', { archived: false });
  assert.deepEqual(r.json(), { id: 'shelve', archived: false });
  for (const bad of [{}, { archived: 'yes' }, { archived: true, id: 'x' }, []]) {
    r = await srv.api('PATCH', '/campaigns/shelve', bad);
    assert.equal(r.status, 400, JSON.stringify(bad));
    assert.equal(typeof r.json().error, 'string');
  }
  assert.equal((await srv.api('PATCH', '/campaigns/nope', { archived: true })).status, 404);
});

test('DELETE erases a campaign and its events; a session needs its CSRF token', async () => {
  for (const who of ['a', 'b']) await srv.pixel({ campaign: 'gone', email: who }, { 'User-Agent': UA.thunderbird });
  await srv.indexed();
  const { cookieHeader, csrf } = await srv.login();
  let r = await srv.req('/api/v1/campaigns/gone', { method: 'DELETE', headers: { Cookie: cookieHeader } });
  assert.equal(r.status, 403);
  r = await srv.req('/api/v1/campaigns/gone', { method: 'PATCH', body: { archived: true }, headers: { Cookie: cookieHeader } });
  assert.equal(r.status, 403);
  r = await srv.req('/api/v1/campaigns/gone', { method: 'DELETE', headers: { Cookie: cookieHeader, 'X-CSRF-Token': csrf } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json(), { id: 'gone', deleted: true, deleted_events: 2 });
  assert.equal((await srv.api('GET', '/campaigns/gone')).status, 404);
  assert.ok(!ids(await srv.apiOk('GET', '/campaigns')).includes('gone'));
  assert.equal((await srv.api('DELETE', '/campaigns/gone')).status, 404);
  assert.equal((await srv.api('POST', '/campaigns/keep', {})).status, 405);
});
