// Opens of campaigns that do not exist: kept apart (bounded by both limits), listed, adopted
// as if the campaign had existed, discarded; --auto-create-campaigns; and a command that
// creates a new, empty data folder saying so.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { realpath, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { UA, assertPixel, request, run, startServer, tempDir } from './harness.mjs';

/** The log lines of SRV that contain TEXT. */
function logLines(srv, text) {
  return srv.logs().split('\n').filter((l) => l.includes(text));
}

/** The unknown campaign ID in the list, or undefined. */
async function unknown(srv, id) {
  const list = await srv.apiOk('GET', '/unknown-campaigns');
  assert.ok(Array.isArray(list), JSON.stringify(list));
  return list.find((u) => u.id === id);
}

/** The same opens, for one campaign or another: recipients, clients, one through a proxy. */
const OPENS = [
  [{ email: 'alice@example.com' }, { 'User-Agent': UA.thunderbird }],
  [{ email: 'alice@example.com' }, { 'User-Agent': UA.gmail }],
  [{ email: 'bob@example.com' }, { 'User-Agent': UA.chrome }],
  [{}, { 'User-Agent': UA.thunderbird }],
  [{ email: 'carol@example.com' }, { 'User-Agent': UA.curl }], // a machine
];

async function sendOpens(srv, campaign) {
  for (const [params, headers] of OPENS) assertPixel(await srv.pixel({ campaign, ...params }, headers));
}

/** What the API shows of a campaign's counts, without its own ID and dates. */
async function counts(srv, id) {
  const c = await srv.campaign(id);
  return {
    total_views: c.total_views,
    unique_views: c.unique_views,
    by_class: c.by_class,
    per_recipient: c.per_recipient.map((r) => ({ recipient: r.recipient, views: r.views, machine: r.machine, self: r.self })),
  };
}

describe('opens of a campaign that does not exist', () => {
  let srv;
  before(async () => {
    srv = await startServer({ campaigns: ['control'] });
  });
  after(async () => {
    await srv?.stop();
  });

  test('get the GIF and are kept apart, listed with their count and times, logged once', async () => {
    const m0 = await srv.metrics();
    const t0 = Date.now();
    await sendOpens(srv, 'newsleter-2026');
    const u = await unknown(srv, 'newsleter-2026');
    assert.ok(u, 'listed');
    assert.deepEqual(Object.keys(u).sort(), ['first_at', 'id', 'last_at', 'opens']);
    assert.equal(u.opens, OPENS.length);
    assert.match(u.first_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(Date.parse(u.first_at) >= t0 - 1000 && Date.parse(u.first_at) <= Date.parse(u.last_at));
    // Not a campaign (yet).
    assert.equal((await srv.api('GET', '/campaigns/newsleter-2026')).status, 404);
    assert.ok(!(await srv.apiOk('GET', '/campaigns')).some((c) => c.id === 'newsleter-2026'));
    const m1 = await srv.metrics();
    assert.equal(m1.spypixel_opens_unknown_campaign_total - m0.spypixel_opens_unknown_campaign_total, OPENS.length);
    assert.equal(m1.spypixel_opens_recorded_total, m0.spypixel_opens_recorded_total);
    assert.equal(logLines(srv, 'campaign="newsleter-2026"').filter((l) => l.includes('does not exist')).length, 1, srv.logs());
  });

  test('the list is behind authentication like the rest of the API', async () => {
    assert.equal((await request(`${srv.base}/api/v1/unknown-campaigns`)).status, 401);
    assert.equal((await request(`${srv.base}/api/v1/unknown-campaigns/newsleter-2026/adopt`, { method: 'POST' })).status, 401);
    assert.equal((await srv.api('POST', '/unknown-campaigns')).status, 405);
    assert.equal((await srv.api('GET', '/unknown-campaigns/newsleter-2026/adopt')).status, 405);
    assert.equal((await srv.api('POST', '/unknown-campaigns/bad%20id/adopt')).status, 400);
    // With the session cookie, a change needs the CSRF token.
    const { cookieHeader, csrf } = await srv.login();
    const url = `${srv.base}/api/v1/unknown-campaigns/newsleter-2026/adopt`;
    assert.equal((await request(url, { method: 'POST', headers: { Cookie: cookieHeader } })).status, 403);
    assert.ok(csrf);
    assert.ok(await unknown(srv, 'newsleter-2026'), 'still kept');
  });

  test('adopting creates the campaign and counts its opens as if it had existed', async () => {
    await sendOpens(srv, 'control');
    const kept = await unknown(srv, 'newsleter-2026');
    const m0 = await srv.metrics();
    const r = await srv.api('POST', '/unknown-campaigns/newsleter-2026/adopt');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { id: 'newsleter-2026', created: true, adopted: OPENS.length, unreadable: 0 });
    // The next read waits for the writer: the adopted opens are there, counted as the control's.
    const adopted = await counts(srv, 'newsleter-2026');
    assert.deepEqual(adopted, await counts(srv, 'control'));
    assert.equal(adopted.total_views, 4);
    assert.equal(adopted.unique_views, 3);
    assert.deepEqual(adopted.by_class, { human: 3, proxy: 1, machine: 1, self: 0 });
    // Each open keeps its own time and what was recorded of it; enrichment ran on it.
    const evs = await srv.events('newsleter-2026');
    assert.equal(evs.length, OPENS.length);
    assert.equal(evs.at(-1).ts, kept.first_at);
    assert.equal(evs[0].ts, kept.last_at);
    const proxied = evs.find((e) => e.user_agent === UA.gmail);
    assert.equal(proxied.class, 'proxy');
    assert.equal(proxied.recipient, 'alice@example.com');
    assert.ok(proxied.via, 'the proxy is named');
    assert.equal(evs.find((e) => e.user_agent === UA.chrome).browser, 'Chrome');
    // Done with: no longer listed, and a second adoption finds nothing.
    assert.equal(await unknown(srv, 'newsleter-2026'), undefined);
    assert.equal((await srv.api('POST', '/unknown-campaigns/newsleter-2026/adopt')).status, 404);
    const m1 = await srv.metrics();
    assert.equal(m1.spypixel_opens_adopted_total - m0.spypixel_opens_adopted_total, OPENS.length);
    // New opens go to the campaign now.
    assertPixel(await srv.pixel({ campaign: 'newsleter-2026', email: 'dan@example.com' }, { 'User-Agent': UA.thunderbird }));
    assert.equal((await srv.campaign('newsleter-2026')).total_views, 5);
    assert.equal(await unknown(srv, 'newsleter-2026'), undefined);
  });

  test('adopting twice at once stores each open once', async () => {
    await sendOpens(srv, 'twice');
    const answers = await Promise.all([1, 2, 3].map(() => srv.api('POST', '/unknown-campaigns/twice/adopt')));
    const ok = answers.filter((a) => a.status === 200);
    assert.ok(ok.length >= 1, answers.map((a) => `${a.status} ${a.text}`).join('; '));
    for (const a of answers) assert.ok(a.status === 200 || a.status === 404, a.text);
    assert.equal(ok.filter((a) => a.json().created).length, 1, 'created once');
    assert.equal((await srv.events('twice')).length, OPENS.length);
    assert.deepEqual(await counts(srv, 'twice'), await counts(srv, 'control'));
  });

  test('a campaign created by hand meanwhile adopts them too', async () => {
    await sendOpens(srv, 'by-hand');
    assert.ok(await unknown(srv, 'by-hand'), 'kept apart');
    assert.equal((await srv.api('POST', '/campaigns', { id: 'by-hand' })).status, 201);
    assert.ok(await unknown(srv, 'by-hand'), 'still listed: its kept opens are not in it');
    const r = await srv.apiOk('POST', '/unknown-campaigns/by-hand/adopt');
    assert.equal(r.created, false);
    assert.equal(r.adopted, OPENS.length);
    assert.equal((await srv.campaign('by-hand')).total_views, 4);
  });

  test('discarding forgets them', async () => {
    assertPixel(await srv.pixel({ campaign: 'scanner-junk-1', email: 'x' }));
    assert.ok(await unknown(srv, 'scanner-junk-1'));
    assert.deepEqual(await srv.apiOk('DELETE', '/unknown-campaigns/scanner-junk-1'), { id: 'scanner-junk-1', deleted: true });
    assert.equal(await unknown(srv, 'scanner-junk-1'), undefined);
    assert.equal((await srv.api('DELETE', '/unknown-campaigns/scanner-junk-1')).status, 404);
    assert.equal((await srv.api('GET', '/campaigns/scanner-junk-1')).status, 404);
  });

  test('they are still there after a restart', async () => {
    await sendOpens(srv, 'survives');
    await srv.stop({ keep: true });
    srv = await startServer({ dataDir: srv.dataDir, token: srv.token });
    assert.equal((await unknown(srv, 'survives')).opens, OPENS.length);
    assert.equal((await srv.apiOk('POST', '/unknown-campaigns/survives/adopt')).adopted, OPENS.length);
    assert.equal((await srv.campaign('survives')).total_views, 4);
  });
});

describe('the limits', () => {
  let srv;
  before(async () => {
    srv = await startServer({ flags: ['--unknown-campaigns-max', '3', '--unknown-opens-max', '5'] });
  });
  after(async () => {
    await srv?.stop();
  });

  test('at most --unknown-campaigns-max IDs: the opens of more are refused, counted and logged', async () => {
    const m0 = await srv.metrics();
    for (let i = 1; i <= 6; i++) {
      assertPixel(await srv.pixel({ campaign: `spray-${i}`, email: 'x' }, { 'User-Agent': UA.curl }));
      await srv.indexed(); // one at a time: which three are kept is then known
    }
    const list = await srv.apiOk('GET', '/unknown-campaigns');
    assert.deepEqual(list.map((u) => u.id).sort(), ['spray-1', 'spray-2', 'spray-3']);
    const m1 = await srv.metrics();
    assert.equal(m1.spypixel_opens_unknown_campaign_total - m0.spypixel_opens_unknown_campaign_total, 3);
    assert.equal(m1.spypixel_opens_unknown_refused_total - m0.spypixel_opens_unknown_refused_total, 3);
    // The first refusal is logged at once; more within the minute wait for the next line.
    const lines = logLines(srv, 'were not kept');
    assert.equal(lines.length, 1, srv.logs());
    assert.match(lines[0], /refused=1 dropped=0 max_campaigns=3 max_opens=5/);
    // The refused IDs were not logged one by one, the kept ones were.
    assert.equal(logLines(srv, 'campaign="spray-').length, 3);
  });

  test('at most --unknown-opens-max opens per ID, the newest; the count goes on', async () => {
    const m0 = await srv.metrics();
    for (let i = 0; i < 8; i++) assertPixel(await srv.pixel({ campaign: 'spray-1', email: `r${i}` }, { 'User-Agent': UA.thunderbird }));
    assert.equal((await unknown(srv, 'spray-1')).opens, 9);
    const m1 = await srv.metrics();
    assert.equal(m1.spypixel_opens_unknown_dropped_total - m0.spypixel_opens_unknown_dropped_total, 4);
    const r = await srv.apiOk('POST', '/unknown-campaigns/spray-1/adopt');
    assert.equal(r.adopted, 5);
    const evs = await srv.events('spray-1');
    assert.deepEqual(evs.map((e) => e.recipient).sort(), ['r3', 'r4', 'r5', 'r6', 'r7']);
    assert.equal((await srv.campaign('spray-1')).total_views, 5);
  });

  test('a slot freed by adoption or discarding takes a new ID again', async () => {
    assert.equal((await srv.apiOk('GET', '/unknown-campaigns')).length, 2);
    assertPixel(await srv.pixel({ campaign: 'spray-9', email: 'x' }));
    assert.ok(await unknown(srv, 'spray-9'));
    assertPixel(await srv.pixel({ campaign: 'spray-10', email: 'x' }));
    assert.equal(await unknown(srv, 'spray-10'), undefined);
  });
});

describe('--auto-create-campaigns', () => {
  let srv;
  before(async () => {
    srv = await startServer({ flags: ['--auto-create-campaigns'] });
  });
  after(async () => {
    await srv?.stop();
  });

  test('an open of a campaign that does not exist creates it, as the seed did', async () => {
    const t0 = Date.now();
    assertPixel(await srv.pixel({ campaign: 'fresh-1', email: 'ann' }, { 'User-Agent': UA.thunderbird }));
    assertPixel(await srv.pixel({ campaign: 'fresh-1', email: 'bob' }, { 'User-Agent': UA.thunderbird }));
    const c = await srv.campaign('fresh-1');
    assert.equal(c.total_views, 2);
    assert.equal(c.unique_views, 2);
    assert.ok(Date.parse(c.created_at) >= t0 - 1000, 'dated by its first open');
    assert.deepEqual(await srv.apiOk('GET', '/unknown-campaigns'), []);
    assert.equal(logLines(srv, 'campaign created by its first open').length, 1, srv.logs());
    assert.equal((await srv.metrics()).spypixel_campaigns_auto_created_total, 1);
  });
});

describe('a command that creates a new, empty data folder', () => {
  let dir;
  before(async () => {
    dir = await realpath(await tempDir());
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('says so and where, once', async () => {
    // Run from another folder without --data: ./data there.
    const first = await run(['campaign', 'create', 'x'], { cwd: dir });
    assert.equal(first.code, 0, first.stderr);
    assert.ok(first.stderr.includes(`created a new data folder at ${path.join(dir, 'data')}\n`), first.stderr);
    assert.ok((await stat(path.join(dir, 'data', 'spypixel.db'))).isFile());
    const again = await run(['campaign', 'create', 'y'], { cwd: dir });
    assert.equal(again.code, 0, again.stderr);
    assert.ok(!again.stderr.includes('new data folder'), again.stderr);
    const token = await run(['token', 'create', 't', '--data', 'elsewhere'], { cwd: dir });
    assert.equal(token.code, 0, token.stderr);
    assert.match(token.stderr, new RegExp(`created a new data folder at ${path.join(dir, 'elsewhere')}\\n`));
    assert.match(token.stdout, /^spt_\S+\n$/, 'standard output holds the token alone');
  });
});
