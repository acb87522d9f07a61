// The event log filtered and paged on the server, the recipients table sorted by any column,
// and a recipient's timeline across campaigns.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { UA, startServer } from './harness.mjs';

let srv;
before(async () => {
  srv = await startServer({ campaigns: ['s1', 's2'] });
  const human = { 'User-Agent': UA.thunderbird };
  for (let i = 0; i < 12; i++) await srv.pixel({ campaign: 's1', email: `r${i % 4}@x.org` }, i % 3 ? human : { 'User-Agent': UA.gmail });
  await srv.pixel({ campaign: 's1', email: 'r0@x.org' }, { 'User-Agent': UA.curl });
  await srv.pixel({ campaign: 's2', email: 'r0@x.org' }, human);
  const { url } = await srv.apiOk('POST', '/links', { campaign: 's1', recipient: 'r1@x.org', target: 'https://example.com/' });
  for (let i = 0; i < 3; i++) assert.equal((await srv.req(new URL(url).pathname, { headers: human })).status, 302);
  await srv.indexed();
});
after(async () => {
  await srv?.stop();
});

const events = (q) => srv.apiOk('GET', `/campaigns/s1/events${q}`);

test('filters on the server, each and together', async () => {
  const all = await events('?limit=1000');
  assert.equal(all.length, 16);
  const check = async (q, pred) => {
    const got = await events(`${q}&limit=1000`);
    assert.deepEqual(got.map((e) => e.id), all.filter(pred).map((e) => e.id), q);
    assert.ok(got.length > 0 || q.includes('country'), q);
  };
  await check('?recipient=r1@x.org', (e) => e.recipient === 'r1@x.org');
  await check('?class=proxy', (e) => e.class === 'proxy');
  await check('?kind=click', (e) => e.kind === 'click');
  await check('?client=Thunderbird', (e) => e.browser === 'Thunderbird');
  await check('?country=ZZ', () => false);
  await check('?recipient=r1@x.org&kind=open&class=human', (e) => e.recipient === 'r1@x.org' && e.kind === 'open' && e.class === 'human');
  const mid = all[8].ts;
  await check(`?from=${mid}`, (e) => e.ts >= mid);
  await check(`?to=${mid}`, (e) => e.ts < mid);
});

test('keyset pages add up to the whole, with a filter', async () => {
  const all = await events('?kind=open&limit=1000');
  const seen = [];
  let before = '';
  for (;;) {
    const page = await events(`?kind=open&limit=5${before}`);
    seen.push(...page.map((e) => e.id));
    if (page.length < 5) break;
    before = `&before=${page[page.length - 1].id}`;
  }
  assert.deepEqual(seen, all.map((e) => e.id));
});

test('bad filters get 400 with the reason', async () => {
  for (const q of ['?class=robot', '?kind=read', '?recipient=a%20b', `?country=${'x'.repeat(200)}`, '?from=soon', '?before=-1', '?limit=0']) {
    const r = await srv.api('GET', `/campaigns/s1/events${q}`);
    assert.equal(r.status, 400, q);
    assert.equal(typeof r.json().error, 'string', q);
  }
});

test('a recipient\'s timeline across campaigns, newest first, paged', async () => {
  const t = await srv.apiOk('GET', '/recipients/r0@x.org?limit=1000');
  assert.equal(t.recipient, 'r0@x.org');
  assert.deepEqual([...new Set(t.events.map((e) => e.campaign))].sort(), ['s1', 's2']);
  assert.equal(t.events.length, 5);
  for (let i = 1; i < t.events.length; i++) assert.ok(t.events[i].id < t.events[i - 1].id);
  const first = await srv.apiOk('GET', '/recipients/r0@x.org?limit=2');
  assert.equal(first.next_before, t.events[1].id);
  const next = await srv.apiOk('GET', `/recipients/r0@x.org?limit=2&before=${first.next_before}`);
  assert.deepEqual(next.events.map((e) => e.id), t.events.slice(2, 4).map((e) => e.id));
  assert.equal((await srv.api('GET', '/recipients/a%20b')).status, 400);
  assert.deepEqual((await srv.apiOk('GET', '/recipients/nobody@x.org')).events, []);
});

test('the recipients table sorts by any column and pages by cursor', async () => {
  for (const sort of ['recipient', 'views', 'clicks', 'first_view_at', 'last_view_at']) {
    for (const order of ['asc', 'desc']) {
      const whole = await srv.apiOk('GET', `/campaigns/s1/recipients-table?sort=${sort}&order=${order}&limit=100`);
      assert.equal(whole.recipients.length, 4);
      assert.equal(whole.next, null);
      const key = { recipient: 'recipient', views: 'views', clicks: 'clicks', first_view_at: 'first_view_at', last_view_at: 'last_view_at' }[sort];
      const vals = whole.recipients.map((r) => r[key]);
      const sorted = [...vals].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      assert.deepEqual(vals, order === 'asc' ? sorted : sorted.reverse(), `${sort} ${order}`);
      const paged = [];
      let next = '';
      for (let i = 0; i < 10; i++) {
        const page = await srv.apiOk('GET', `/campaigns/s1/recipients-table?sort=${sort}&order=${order}&limit=1${next}`);
        paged.push(...page.recipients.map((r) => r.recipient));
        if (!page.next) break;
        next = `&next=${page.next}`;
      }
      assert.deepEqual(paged, whole.recipients.map((r) => r.recipient), `${sort} ${order} paged`);
    }
  }
  const clicks = await srv.apiOk('GET', '/campaigns/s1/recipients-table?sort=clicks&order=desc');
  assert.equal(clicks.recipients[0].recipient, 'r1@x.org');
  for (const q of ['?sort=ip', '?order=up', '?next=!!', '?next=bm9wZQ', '?limit=0']) {
    assert.equal((await srv.api('GET', `/campaigns/s1/recipients-table${q}`)).status, 400, q);
  }
});
