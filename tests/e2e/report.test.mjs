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

describe('rates from the list of people a campaign was sent to', () => {
  const put = (body, type, id = 'rated') => srv.api('PUT', `/campaigns/${id}/recipients`, typeof body === 'string' ? body : JSON.stringify(body), { 'Content-Type': type });

  before(async () => {
    await srv.apiOk('POST', '/campaigns', { id: 'rated' });
    for (const who of ['ann@x.org', 'ben@x.org', 'ann@x.org', 'zoe@x.org']) await srv.pixel({ campaign: 'rated', email: who }, human);
    await srv.pixel({ campaign: 'rated', email: 'cal@x.org' }, { 'User-Agent': UA.curl }); // a machine: not an open
    const { url } = await srv.apiOk('POST', '/links', { campaign: 'rated', recipient: 'ann@x.org', target: 'https://example.com/' });
    assert.equal((await srv.req(new URL(url).pathname, { headers: human })).status, 302);
    await srv.indexed();
  });

  test('without a list, the rates are null', async () => {
    const r = await srv.apiOk('GET', '/campaigns/rated/report');
    for (const k of ['sent', 'open_rate', 'click_rate', 'click_to_open_rate']) assert.equal(r[k], null, k);
    assert.equal((await srv.campaign('rated')).open_rate, null);
  });

  test('a CSV with a header: its email column; rates, not-opened and its export', async () => {
    const csv = 'Name,Email\r\nAnn,ann@x.org\r\n"Doe, Ben",ben@x.org\r\nCal,cal@x.org\r\nDee,dee@x.org\r\nBad,not an address\r\n,\r\n';
    let r = await put(csv, 'text/csv');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { id: 'rated', sent: 4, invalid: ['not an address'], invalid_count: 1 });
    const rep = await srv.apiOk('GET', '/campaigns/rated/report');
    assert.equal(rep.sent, 4);
    assert.equal(rep.sent_opened, 2); // ann, ben (zoe is not on the list; cal's open was a machine's)
    assert.equal(rep.open_rate, 0.5);
    assert.equal(rep.click_rate, 0.25);
    assert.equal(rep.click_to_open_rate, 0.5);
    const camp = await srv.campaign('rated');
    assert.equal(camp.sent, 4);
    assert.equal(camp.open_rate, 0.5);
    const ranged = await srv.apiOk('GET', `/campaigns/rated/report?from=${new Date(Date.now() + 3600e3).toISOString()}`);
    assert.equal(ranged.sent, 4);
    assert.equal(ranged.open_rate, 0);
    const no = await srv.apiOk('GET', '/campaigns/rated/not-opened');
    assert.deepEqual(no, { id: 'rated', recipients: ['cal@x.org', 'dee@x.org'], next_after: null });
    const page = await srv.apiOk('GET', '/campaigns/rated/not-opened?limit=1');
    assert.deepEqual(page.recipients, ['cal@x.org']);
    assert.equal(page.next_after, 'cal@x.org');
    assert.deepEqual((await srv.apiOk('GET', '/campaigns/rated/not-opened?limit=1&after=cal@x.org')).recipients, ['dee@x.org']);
    r = await srv.api('GET', '/campaigns/rated/not-opened.csv');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/csv/);
    assert.equal(r.text, '"recipient"\r\n"cal@x.org"\r\n"dee@x.org"\r\n');
  });

  test('a JSON list or plain lines replace the list; bad bodies are refused', async () => {
    let r = await put(['ann@x.org', 'ann@x.org', 7, '=HYPERLINK("x")'], 'application/json');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().sent, 1);
    assert.equal(r.json().invalid_count, 2);
    assert.equal((await srv.apiOk('GET', '/campaigns/rated/report')).open_rate, 1);
    r = await put('ann@x.org\nben@x.org\n+plus@x.org\n', 'text/plain');
    assert.equal(r.json().sent, 3);
    r = await srv.api('GET', '/campaigns/rated/not-opened.csv');
    assert.equal(r.text, '"recipient"\r\n"\'+plus@x.org"\r\n'); // a formula's lead is quoted
    assert.equal((await put('{"a":1}', 'application/json')).status, 400);
    assert.equal((await put('x', 'application/xml')).status, 415);
    assert.equal((await put(['a@x.org'], 'application/json', 'nope')).status, 404);
    assert.equal((await srv.api('POST', '/campaigns/rated/recipients', '[]', { 'Content-Type': 'application/json' })).status, 405);
    const many = Array.from({ length: 200001 }, (_, i) => `r${i}`);
    r = await put(many, 'application/json');
    assert.equal(r.status, 400);
    assert.match(r.json().error, /200000/);
    // A list of 150,000 (over 1 MiB) is taken.
    r = await put(many.slice(0, 150000).join('\n'), 'text/csv');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().sent, 150000);
  });
});

test('the command line gives a campaign its list, from a file or standard input', async () => {
  const { run } = await import('./harness.mjs');
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'spypixel-list-'));
  const data = path.join(dir, 'data');
  try {
    assert.equal((await run(['campaign', 'create', 'cli', '--data', data])).code, 0);
    let r = await run(['campaign', 'recipients', 'cli', '-', '--data', data], { input: 'email\na@x.org\nb@x.org\nnot one\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /sent to 2; 1 not an address/);
    const file = path.join(dir, 'list.txt');
    await writeFile(file, 'a@x.org\nb@x.org\nc@x.org\n');
    r = await run(['campaign', 'recipients', 'cli', file, '--data', data]);
    assert.equal(r.code, 0, r.stderr);
    r = await run(['campaign', 'show', 'cli', '--json', '--data', data]);
    const shown = JSON.parse(r.stdout);
    assert.equal(shown.sent, 3);
    assert.equal(shown.open_rate, 0);
    assert.equal((await run(['campaign', 'recipients', 'cli', path.join(dir, 'missing'), '--data', data])).code, 1);
    assert.equal((await run(['campaign', 'recipients', 'nope', file, '--data', data])).code, 1);
    assert.equal((await run(['campaign', 'recipients', 'cli', '--data', data])).code, 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
