// Browser tests: campaign list and page, expanding an open, hostile headers, live updates,
// exports, phone width and dark mode.
// SPDX-License-Identifier: MIT

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startServer, launchBrowser, newPage, login, request } from './harness.mjs';
import { lockStore } from '../e2e/harness.mjs';

const HOSTILE_UA = '<img src=x onerror="window.__pwned=1;alert(1)">';
const HOSTILE_COOKIE_VALUE = '<script>alert(2)</script>';
const IPHONE_UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148';
const GMAIL_PROXY_UA = 'Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)';
const CAMPAIGN = 'launch-2026';

let srv;
let browser;
const urls = {};

before(async () => {
  srv = await startServer();
  browser = await launchBrowser();
  // An older campaign with one open, then the main one with newer activity.
  const old = await srv.pixel('older-campaign', 'zed@example.com');
  await srv.open(old, { 'User-Agent': IPHONE_UA }, '127.0.0.9');
  await srv.api('POST', '/campaigns', { id: 'never-opened' });
  await new Promise((r) => setTimeout(r, 20));
  urls.alice = await srv.pixel(CAMPAIGN, 'alice@example.com');
  urls.bob = await srv.pixel(CAMPAIGN, 'bob@example.com');
  urls.carol = await srv.pixel(CAMPAIGN, 'carol@example.com');
  await srv.open(urls.alice, { 'User-Agent': HOSTILE_UA, Cookie: `x=${HOSTILE_COOKIE_VALUE}; y="<b>bold</b>"`, 'X-Evil': '<svg onload=alert(3)>' }, '127.0.0.2');
  await srv.open(urls.alice, { 'User-Agent': IPHONE_UA }, '127.0.0.3');
  await srv.open(urls.bob, { 'User-Agent': GMAIL_PROXY_UA }, '127.0.0.4');
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

async function eventCount(campaign) {
  const e = await srv.events(campaign);
  return (Array.isArray(e) ? e : e.events).length;
}

test('the campaign list has a card per campaign with its totals, newest activity first', async () => {
  const { context, page, seen } = await newPage(browser, srv);
  await login(page, srv);
  await page.waitForSelector('#campaign-cards li');
  const cards = await page.$$eval('#campaign-cards > li', (lis) => lis.map((li) => ({
    id: li.dataset.campaign,
    total: li.querySelector('.total dd').textContent,
    unique: li.querySelector('.unique dd').textContent,
    last: li.querySelector('.last-open time')?.getAttribute('datetime') || null,
  })));
  const api = await srv.api('GET', '/campaigns');
  assert.deepEqual(cards.map((c) => c.id).slice(0, 2), [CAMPAIGN, 'older-campaign']);
  assert.ok(cards.some((c) => c.id === 'never-opened' && c.last === null));
  for (const c of cards) {
    const a = api.find((x) => x.id === c.id);
    assert.equal(c.total, String(a.total_views), `${c.id} total`);
    assert.equal(c.unique, String(a.unique_views), `${c.id} unique`);
    assert.equal(c.last, a.last_view_at, `${c.id} last open`);
  }
  const main = cards.find((c) => c.id === CAMPAIGN);
  assert.equal(main.total, '3');
  assert.equal(main.unique, '2');
  await page.click(`#campaign-cards a[href="#/campaigns/${CAMPAIGN}"]`);
  await page.waitForSelector('#tiles');
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test('the campaign page shows totals, recipients, the chart and breakdowns', async () => {
  const { context, page, seen } = await newPage(browser, srv);
  await login(page, srv);
  await page.goto(`/#/campaigns/${CAMPAIGN}`);
  await page.waitForSelector('#log li');
  const c = await srv.api('GET', `/campaigns/${CAMPAIGN}`);
  assert.equal(await page.textContent('#tile-total dd'), String(c.total_views));
  assert.equal(await page.textContent('#tile-unique dd'), String(c.unique_views));
  assert.equal(await page.textContent('#tile-machine dd'), String(c.by_class.machine));
  assert.equal(await page.textContent('#tile-self dd'), String(c.by_class.self));
  const recipients = await page.$$eval('#recipients tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  const alice = recipients.find((r) => r[0] === 'alice@example.com');
  assert.ok(alice, JSON.stringify(recipients));
  assert.equal(alice[1], '2', 'alice viewed twice');
  assert.ok(alice[5] && alice[6] && alice[5] !== '—', 'first and last open shown');
  assert.ok(recipients.find((r) => r[0] === 'bob@example.com'));
  assert.ok(await page.$$eval('#chart svg rect.bar', (r) => r.length) > 0, 'the chart has bars');
  assert.match(await page.getAttribute('#chart svg', 'aria-label'), /3 counted/);
  for (const id of ['#by-client', '#by-os', '#by-country']) assert.ok(await page.isVisible(id), id);
  assert.equal(await page.$$eval('#log > li', (l) => l.length), 3);
  // Times are local with the ISO string in the title.
  const t = await page.$eval('#log time', (el) => [el.getAttribute('datetime'), el.getAttribute('title')]);
  assert.match(t[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  assert.equal(t[0], t[1]);
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test('an open expands (by keyboard) to its metadata, and hostile headers stay inert text', async () => {
  const { context, page, seen } = await newPage(browser, srv);
  await login(page, srv);
  await page.goto(`/#/campaigns/${CAMPAIGN}`);
  await page.waitForSelector('#log li');
  const events = await srv.events(CAMPAIGN);
  const list = Array.isArray(events) ? events : events.events;
  const hostile = list.find((e) => e.user_agent === HOSTILE_UA);
  assert.ok(hostile, 'the hostile open was recorded with its user agent intact');

  const item = `#log li[data-event-id="${hostile.id}"]`;
  await page.focus(`${item} summary`);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`${item} .event-body`);
  assert.equal(await page.$eval(`${item} details`, (d) => d.open), true);
  const body = await page.textContent(`${item} .event-body`);
  assert.ok(body.includes(HOSTILE_UA), 'the user agent shows as text');
  assert.ok(body.includes(HOSTILE_COOKIE_VALUE), 'the cookie shows as text');
  assert.ok(body.includes('<svg onload=alert(3)>'), 'raw headers show as text');
  for (const label of ['Mail client', 'Device', 'OS', 'Architecture', 'IP', 'Country', 'City', 'Rule', 'Cookies', 'Raw headers']) {
    assert.ok(body.includes(label), `${label} in the expanded open`);
  }
  assert.ok(body.includes('127.0.0.2'), 'the IP');
  assert.match(body, /loopback/, 'the page says why a loopback address has no place');
  const cookieRows = await page.$$eval(`${item} .cookies tbody tr`, (trs) => trs.map((tr) => tr.textContent));
  assert.ok(cookieRows.length >= 1);

  // Nothing ran and nothing was injected.
  await page.waitForTimeout(300);
  assert.deepEqual(seen.dialogs, [], 'no dialog opened');
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal(await page.$$eval('img[src="x"], script:not([src]), svg[onload]', (l) => l.length), 0);
  assert.deepEqual(seen.errors, []);

  // A proxy open says that its IP and place are the proxy's.
  const proxied = list.find((e) => e.user_agent === GMAIL_PROXY_UA);
  assert.equal(proxied.class, 'proxy', 'GoogleImageProxy is classed as proxy');
  const pItem = `#log li[data-event-id="${proxied.id}"]`;
  await page.click(`${pItem} summary`);
  await page.waitForSelector(`${pItem} .event-body`);
  const notes = await page.$$eval(`${pItem} .proxy-note`, (n) => n.map((x) => x.textContent));
  assert.ok(notes.some((n) => /IP is .*not the reader/.test(n)), JSON.stringify(notes));
  assert.ok(notes.some((n) => /place is .*not the reader/.test(n)), JSON.stringify(notes));

  // The rule that decided links to the rule table, where its reason is.
  await page.click(`${pItem} a[href^="#/rules"]`);
  await page.waitForSelector('#rule-gmail-image-proxy.target');
  assert.match(await page.textContent('#rule-gmail-image-proxy'), /proxy/);
  await context.close();
});

test('a new open appears live, without a reload, and the totals follow', async () => {
  const { context, page, seen } = await newPage(browser, srv);
  await login(page, srv);
  await page.goto(`/#/campaigns/${CAMPAIGN}`);
  await page.waitForSelector('#log li');
  await page.waitForSelector('.live-status[data-state="live"]');
  const before = await page.$$eval('#log > li', (l) => l.length);
  const totalBefore = Number(await page.textContent('#tile-total dd'));
  await page.evaluate(() => { window.__noReload = true; });

  await srv.open(urls.carol, { 'User-Agent': IPHONE_UA }, '127.0.0.5');
  await page.waitForFunction(() => [...document.querySelectorAll('#log .ev-recipient')].some((e) => e.textContent === 'carol@example.com'), null, { timeout: 5000 });
  assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was not reloaded');
  assert.equal(await page.$$eval('#log > li', (l) => l.length), before + 1);
  assert.equal(await page.$eval('#log > li', (li) => li.textContent.includes('carol@example.com')), true, 'newest on top');
  assert.match(await page.textContent('#live-announce'), /carol@example.com/);
  await page.waitForFunction((n) => Number(document.querySelector('#tile-total dd').textContent) === n, totalBefore + 1, { timeout: 5000 });
  await page.waitForFunction(() => [...document.querySelectorAll('#recipients th')].some((th) => th.textContent === 'carol@example.com'), null, { timeout: 5000 });
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test('the campaign list updates live too', async () => {
  const { context, page } = await newPage(browser, srv);
  await login(page, srv);
  await page.waitForSelector('#campaign-cards li');
  await page.waitForSelector('.live-status[data-state="live"]');
  await page.evaluate(() => { window.__noReload = true; });
  const url = await srv.pixel('older-campaign', 'yan@example.com');
  await srv.open(url, { 'User-Agent': IPHONE_UA }, '127.0.0.6');
  await page.waitForFunction(() => document.querySelector('#campaign-cards > li')?.dataset.campaign === 'older-campaign', null, { timeout: 5000 });
  assert.equal(await page.evaluate(() => window.__noReload), true);
  assert.equal(await page.textContent('#campaign-cards > li .total dd'), '2');
  await context.close();
});

test('CSV and JSON exports download', async () => {
  const { context, page } = await newPage(browser, srv);
  await login(page, srv);
  await page.goto(`/#/campaigns/${CAMPAIGN}`);
  await page.waitForSelector('#export-csv');
  const n = await eventCount(CAMPAIGN);

  const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  const csvText = await readFile(await csv.path(), 'utf8');
  assert.match(csv.suggestedFilename(), /\.csv$/);
  const lines = csvText.trim().split(/\r?\n/);
  assert.match(lines[0], /\bts\b/);
  assert.ok(lines.length >= n + 1, `${lines.length} lines for ${n} events`);
  assert.ok(csvText.includes('alice@example.com'));

  const [json] = await Promise.all([page.waitForEvent('download'), page.click('#export-json')]);
  assert.match(json.suggestedFilename(), /\.json$/);
  const parsed = JSON.parse(await readFile(await json.path(), 'utf8'));
  const rows = Array.isArray(parsed) ? parsed : parsed.events;
  assert.equal(rows.length, n);
  assert.ok(rows.some((e) => e.user_agent === HOSTILE_UA));
  await context.close();
});

test('works at phone width, in dark mode, with no CSP violations', async () => {
  const { context, page, seen } = await newPage(browser, srv, { viewport: { width: 375, height: 800 }, colorScheme: 'dark' });
  await login(page, srv);
  for (const route of ['#/campaigns', `#/campaigns/${CAMPAIGN}`, '#/create', '#/rules']) {
    await page.goto(`/${route}`);
    await page.waitForSelector('main h1');
    await page.waitForTimeout(200);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${route}: no sideways scrolling (${overflow}px)`);
  }
  const bg = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  const lum = bg.match(/\d+/g).slice(0, 3).map(Number).reduce((a, b) => a + b, 0) / 3;
  assert.ok(lum < 60, `dark background: ${bg}`);
  assert.deepEqual(seen.console.filter((m) => /Content Security Policy|Refused/.test(m)), []);
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test('an unknown campaign says so', async () => {
  const { context, page } = await newPage(browser, srv);
  await login(page, srv);
  await page.goto('/#/campaigns/no-such-thing');
  await page.waitForSelector('[role="alert"]');
  assert.match(await page.textContent('main'), /no campaign “no-such-thing”/);
  await context.close();
});

test('behind a burst the page says the newest opens are still being stored, and stops saying it once they are', async () => {
  const { context, page, seen } = await newPage(browser, srv);
  await login(page, srv);
  await page.goto(`/#/campaigns/${CAMPAIGN}`);
  await page.waitForSelector('#tiles');
  assert.equal(await page.isHidden('#backlog'), true);
  // Another program holds the database: the server answers opens but cannot store them.
  const lock = await lockStore(srv.dataDir);
  let released = false;
  try {
    await srv.open(urls.carol, { 'User-Agent': IPHONE_UA }, '127.0.0.5');
    await page.reload();
    await page.waitForSelector('#backlog:not([hidden])', { timeout: 10000 });
    const text = await page.textContent('#backlog');
    assert.match(text, /newest opens are still being stored \(\d+\.\d MB behind\)/);
    assert.equal(await page.getAttribute('#backlog', 'role'), 'status');
    await lock.release();
    released = true;
    for (let i = 0; i < 400; i++) {
      const h = (await request(`${srv.base}/healthz`)).json();
      if (h.index_backlog_bytes === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await page.reload();
    await page.waitForSelector('#tiles');
    await page.waitForSelector('#backlog[hidden]', { state: 'attached', timeout: 10000 });
    assert.deepEqual(seen.errors, []);
  } finally {
    if (!released) await lock.release();
    await context.close();
  }
});
