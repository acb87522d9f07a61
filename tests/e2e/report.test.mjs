// The campaign report over HTTP: figures from every event (the rollups agree with the
// events read one by one), time zones and buckets across daylight-saving changes, and the
// answers to bad ranges, zones and buckets.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { UA, startServer } from './harness.mjs';

let srv;
before(async () => {
  srv = await startServer({ campaigns: ['rep', 'empty'] });
});
after(async () => {
  await srv?.stop();
});

const human = { 'User-Agent': UA.thunderbird };
const report = (query = '') => srv.apiOk('GET', `/campaigns/rep/report${query}`);

describe('report', () => {
  before(async () => {
    for (const who of ['a@x.org', 'b@x.org', 'c@x.org', 'a@x.org']) await srv.pixel({ campaign: 'rep', email: who }, human);
    await srv.pixel({ campaign: 'rep', email: 'd@x.org' }, { 'User-Agent': UA.gmail });
    await srv.pixel({ campaign: 'rep', email: 'e@x.org' }, { 'User-Agent': UA.curl });
    await srv.pixel({ campaign: 'rep' }, { 'User-Agent': UA.chrome, Cookie: 'spv=one' });
    const { url } = await srv.apiOk('POST', '/links', { campaign: 'rep', recipient: 'b@x.org', target: 'https://example.com/' });
    for (let i = 0; i < 2; i++) assert.equal((await srv.req(new URL(url).pathname, { headers: human })).status, 302);
    await srv.indexed();
  });

  test('counts every event, as reading the events does', async () => {
    const r = await report('?tz=Europe/Berlin&bucket=hour');
    const classes = (await srv.events('rep')).filter((e) => e.kind === 'open').map((e) => e.class);
    const count = (c) => classes.filter((x) => x === c).length;
    assert.deepEqual(r.by_class, { human: count('human'), proxy: count('proxy'), machine: count('machine'), self: count('self') });
    assert.equal(r.total_views, count('human') + count('proxy'));
    assert.equal(r.total_views, 6);
    assert.equal(r.unique_views, 5); // a, b, c, d (through Gmail), the cookie's visitor
    assert.equal(r.clicks, 2);
    assert.equal(r.unique_clickers, 1);
    assert.equal(r.tz, 'Europe/Berlin');
    assert.equal(r.from, null);
    assert.equal(r.sent, null);
    const sum = (a) => a.reduce((x, y) => x + y, 0);
    assert.equal(sum(r.series.map((p) => p.counted)), 6);
    assert.equal(sum(r.series.map((p) => p.clicks)), 2);
    assert.equal(sum(r.hour_of_day), 6);
    assert.equal(r.hour_of_day.length, 24);
    assert.equal(sum(r.day_of_week), 6);
    assert.equal(r.day_of_week.length, 7);
    for (const p of r.series) assert.match(p.t, /^\d{4}-\d\d-\d\dT\d\d:00:00\+0[12]:00$/);
    for (const dim of ['client', 'os', 'device', 'country', 'city', 'via']) {
      assert.equal(sum(r.breakdowns[dim].map((n) => n.count)), 6, dim);
    }
    // A proxy's open says nothing of the reader's client: it counts under its proxy.
    const clients = Object.fromEntries(r.breakdowns.client.map((n) => [n.name, n.count]));
    assert.equal(clients.Thunderbird, 4);
    assert.ok(!('Firefox' in clients), JSON.stringify(clients));
    // Thunderbird's Windows 10 is the reader's; the Gmail proxy's Windows XP is not.
    const oses = Object.fromEntries(r.breakdowns.os.map((n) => [n.name, n.count]));
    assert.equal(oses.Windows, 4, JSON.stringify(oses));
    // The same figures from the events themselves.
    const scanned = await report('?tz=Europe/Berlin&bucket=hour&source=events');
    assert.deepEqual(scanned, r);
  });

  test('a range: only its events', async () => {
    const future = new Date(Date.now() + 3600e3).toISOString();
    const r = await report(`?from=${future}`);
    assert.equal(r.total_views, 0);
    assert.equal(r.unique_views, 0);
    assert.equal(r.clicks, 0);
    const past = new Date(Date.now() - 3600e3).toISOString();
    const now = await report(`?from=${past}&to=${future}&bucket=hour`);
    assert.equal(now.total_views, 6);
    assert.equal(now.series.length, 3);
    assert.deepEqual(await report(`?from=${past}&to=${future}&bucket=hour&source=events`), now);
  });

  test('buckets are local days and hours, across daylight-saving changes', async () => {
    let r = await srv.apiOk('GET', '/campaigns/empty/report?from=2026-03-28&to=2026-03-31&tz=Europe/Berlin');
    assert.equal(r.from, '2026-03-28T00:00:00+01:00');
    assert.equal(r.to, '2026-03-31T00:00:00+02:00');
    assert.deepEqual(r.series.map((p) => p.t), ['2026-03-28T00:00:00+01:00', '2026-03-29T00:00:00+01:00', '2026-03-30T00:00:00+02:00']);
    r = await srv.apiOk('GET', '/campaigns/empty/report?from=2026-03-29T00:00&to=2026-03-29T05:00&tz=Europe/Berlin&bucket=hour');
    assert.deepEqual(r.series.map((p) => p.t), ['2026-03-29T00:00:00+01:00', '2026-03-29T01:00:00+01:00', '2026-03-29T03:00:00+02:00', '2026-03-29T04:00:00+02:00']);
    r = await srv.apiOk('GET', '/campaigns/empty/report?from=2026-10-25T00:00&to=2026-10-25T04:00&tz=Europe/Berlin&bucket=hour');
    assert.deepEqual(r.series.map((p) => p.t), ['2026-10-25T00:00:00+02:00', '2026-10-25T01:00:00+02:00', '2026-10-25T02:00:00+02:00', '2026-10-25T02:00:00+01:00', '2026-10-25T03:00:00+01:00']);
    r = await srv.apiOk('GET', '/campaigns/empty/report?from=2026-11-30T00:00:00Z&to=2026-12-14T00:00:00Z&tz=UTC&bucket=week');
    assert.deepEqual(r.series.map((p) => p.t), ['2026-11-30T00:00:00Z', '2026-12-07T00:00:00Z']);
    r = await srv.apiOk('GET', '/campaigns/empty/report?from=2026-12-01T00:00:00Z&to=2026-12-01T02:00:00Z&tz=Asia/Kathmandu&bucket=hour');
    assert.deepEqual(r.series.map((p) => p.t), ['2026-12-01T05:00:00+05:45', '2026-12-01T06:00:00+05:45', '2026-12-01T07:00:00+05:45']);
  });

  test('bad requests get 400 with a JSON error; unknown campaigns 404', async () => {
    const bad = [
      '?tz=Nowhere/City', '?tz=../../etc/passwd', '?tz=/etc/localtime', `?tz=${'A'.repeat(200)}`, '?tz=Europe',
      '?bucket=month', '?from=yesterday', '?from=2026-02-30', '?from=2026-12-01T25:00', `?from=${'2'.repeat(100)}`,
      '?from=2026-12-02&to=2026-12-01', '?from=2000-01-01&to=2026-01-01&bucket=hour',
    ];
    for (const q of bad) {
      const r = await srv.api('GET', `/campaigns/rep/report${q}`);
      assert.equal(r.status, 400, `${q}: ${r.status} ${r.text}`);
      assert.equal(typeof r.json().error, 'string', q);
    }
    const r = await srv.api('GET', '/campaigns/nope/report');
    assert.equal(r.status, 404);
    const anon = await srv.req('/api/v1/campaigns/rep/report');
    assert.equal(anon.status, 401);
  });
});
