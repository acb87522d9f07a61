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

test('the pixels, links and images made are listed; each link with its clicks', async () => {
  await srv.apiOk('POST', '/campaigns', { id: 'made' });
  const pixel = await srv.apiOk('POST', '/pixels', { campaign: 'made', recipient: 'amy@x.org' });
  const a = await srv.apiOk('POST', '/links', { campaign: 'made', recipient: 'amy@x.org', target: 'https://example.com/offer' });
  const b = await srv.apiOk('POST', '/links', { campaign: 'made', recipient: 'bob@x.org', target: 'https://example.com/offer' });
  await srv.apiOk('POST', '/links', { campaign: 'made', recipient: 'amy@x.org', target: 'https://example.com/offer' }); // the same again
  await srv.apiOk('POST', '/links', { campaign: 'made', target: 'https://example.com/unclicked' });
  const gif = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');
  const img = await srv.api('POST', '/images?campaign=made', gif, { 'Content-Type': 'image/gif' });
  assert.equal(img.status, 201, img.text);
  const human = { 'User-Agent': UA.thunderbird };
  for (const u of [a.url, a.url, b.url]) assert.equal((await srv.req(new URL(u).pathname, { headers: human })).status, 302);
  assert.equal((await srv.req(new URL(a.url).pathname, { headers: { 'User-Agent': UA.curl } })).status, 302);
  await srv.indexed();
  const t = await srv.apiOk('GET', '/campaigns/made/trackers');
  assert.deepEqual(t.trackers.map((x) => x.kind), ['image', 'link', 'link', 'link', 'pixel']);
  assert.equal(t.trackers[4].url, pixel.url);
  assert.equal(t.trackers[4].recipient, 'amy@x.org');
  assert.equal(t.trackers[3].target, 'https://example.com/offer');
  assert.match(t.trackers[0].created_at, /^\d{4}-\d\d-\d\dT/);
  const paged = await srv.apiOk('GET', `/campaigns/made/trackers?limit=2&before=${t.trackers[1].id}`);
  assert.deepEqual(paged.trackers.map((x) => x.id), [t.trackers[2].id, t.trackers[3].id]);
  assert.equal(paged.next_before, t.trackers[3].id);
  const { links } = await srv.apiOk('GET', '/campaigns/made/links');
  assert.equal(links.length, 2);
  assert.deepEqual({ ...links[0], first_click_at: null, last_click_at: null }, { target: 'https://example.com/offer', made: 2, clicks: 3, unique_clickers: 2, first_click_at: null, last_click_at: null });
  assert.ok(links[0].first_click_at <= links[0].last_click_at);
  assert.deepEqual(links[1], { target: 'https://example.com/unclicked', made: 1, clicks: 0, unique_clickers: 0, first_click_at: null, last_click_at: null });
  assert.equal((await srv.api('GET', '/campaigns/made/trackers?before=x')).status, 400);
  assert.equal((await srv.api('GET', '/campaigns/nope/links')).status, 404);
});
