// Browser tests: what a new user tripped over. A proxy's OS is not the reader's, negative
// coordinates stay numbers in the CSV, the Classes page at phone width, the link form's
// message, a campaign that does not exist, client names, one date format, one language.
// SPDX-License-Identifier: MIT

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startServer, launchBrowser, newPage, session, request } from './harness.mjs';

const IPHONE_UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148';
const MAC_MAIL_UA = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)';
const GMAIL_PROXY_UA = 'Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)';
const FIREFOX_UA = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0';
const LONG = 'firstname.middlename.lastname.department@subdomain.example-company.com';
const CAMPAIGN = 'newuser';
// An address the DB-IP Lite database places west of Greenwich (a negative longitude).
const WEST_IP = '216.160.83.56';

let srv;
let browser;
let state; // one login for every test here: none of them tests the login
const ids = {};

before(async () => {
  srv = await startServer({ geoip: true, args: ['--trusted-proxy', '127.0.0.0/8'] });
  browser = await launchBrowser();
  state = await session(browser, srv);
  await srv.open(await srv.pixel(CAMPAIGN, 'ios@example.com'), { 'User-Agent': IPHONE_UA }, '127.0.0.3');
  await srv.open(await srv.pixel(CAMPAIGN, 'mac@example.com'), { 'User-Agent': MAC_MAIL_UA }, '127.0.0.4');
  await srv.open(await srv.pixel(CAMPAIGN, 'gmail@example.com'), { 'User-Agent': GMAIL_PROXY_UA }, '127.0.0.5');
  await srv.open(await srv.pixel(CAMPAIGN, LONG), { 'User-Agent': FIREFOX_UA, 'X-Forwarded-For': WEST_IP }, '127.0.0.6');
  const link = await srv.api('POST', '/links', { campaign: CAMPAIGN, recipient: 'clicker@example.com', target: 'https://example.org/offer' });
  const r = await request(link.url, { headers: { 'User-Agent': FIREFOX_UA }, localAddress: '127.0.0.7' });
  assert.equal(r.status, 302);
  for (const e of await srv.events(CAMPAIGN)) {
    if (e.kind === 'click') ids.click = e.id;
    else if (e.recipient === 'ios@example.com') ids.ios = e.id;
    else if (e.recipient === 'mac@example.com') ids.mac = e.id;
    else if (e.recipient === 'gmail@example.com') ids.gmail = e.id;
    else if (e.recipient === LONG) ids.west = e;
  }
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

async function campaignPage(opts) {
  const p = await newPage(browser, srv, { ...opts, storageState: state });
  await p.page.goto(`/#/campaigns/${CAMPAIGN}`);
  await p.page.waitForSelector('#log li');
  return p;
}

async function expand(page, id) {
  const item = `#log li[data-event-id="${id}"]`;
  await page.click(`${item} summary`);
  await page.waitForSelector(`${item} .event-body`);
  return item;
}

test('a proxy open warns that its OS, device and client are the proxy’s, not the reader’s', async () => {
  const { context, page, seen } = await campaignPage();
  const item = await expand(page, ids.gmail);
  const osRow = await page.$$eval(`${item} .kv`, (kvs) => kvs.map((kv) => [kv.querySelector('dt').textContent, kv.querySelector('dd').textContent])
    .find(([k]) => k === 'OS'));
  assert.ok(osRow, 'an OS row');
  assert.match(osRow[1], /Windows XP/);
  assert.match(osRow[1], /not the reader’s system/, `the OS row warns: ${osRow[1]}`);
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test('the CSV export keeps a negative coordinate a number, and still defuses text', async () => {
  assert.ok(ids.west && ids.west.longitude < 0, `the open from ${WEST_IP} is placed west of Greenwich: ${JSON.stringify(ids.west && [ids.west.latitude, ids.west.longitude])}`);
  const { context, page } = await campaignPage();
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  const text = await readFile(await dl.path(), 'utf8');
  const lines = text.trim().split(/\r?\n/);
  const head = lines[0].split(',');
  const row = lines.find((l) => l.includes(LONG));
  const cells = row.match(/"((?:[^"]|"")*)"/g).map((c) => c.slice(1, -1));
  const lon = cells[head.indexOf('longitude')];
  assert.equal(lon, ids.west.longitude.toFixed(4), 'the longitude is written as a number');
  assert.ok(!Number.isNaN(Number(lon)));
  await context.close();
});

test('the Classes page fits a phone: no table wider than the screen', async () => {
  const { context, page } = await newPage(browser, srv, { viewport: { width: 375, height: 800 }, storageState: state });
  await page.goto('/#/rules');
  await page.waitForSelector('#rules tbody tr');
  const [tableW, wrapW] = await page.$eval('#rules', (t) => [t.scrollWidth, t.parentElement.clientWidth]);
  assert.ok(tableW <= wrapW, `the rule table is ${tableW}px wide in a ${wrapW}px box`);
  // Each rule still shows its name, class and reason.
  const first = await page.$eval('#rules tbody tr', (tr) => tr.textContent);
  assert.ok(first.length > 20);
  await context.close();
});

test('the link form forgets "Tracked link copied." when the destination changes or is refused', async () => {
  const { context, page } = await newPage(browser, srv, { clipboard: true, storageState: state });
  await page.goto(`/#/create?campaign=${CAMPAIGN}`);
  await page.fill('#target', 'https://example.org/first');
  await page.click('#copy-link');
  await page.waitForSelector('#link-url:not([hidden])');
  assert.match(await page.textContent('#link-status'), /copied|Copy it/);
  // A destination the page cannot accept: the old message and link go.
  await page.fill('#target', 'not an address');
  await page.click('#copy-link');
  assert.doesNotMatch(await page.textContent('#link-status'), /copied/);
  assert.equal(await page.isHidden('#link-url'), true, 'the old link is not left beside the new destination');
  // One the page accepts but the server refuses (a host that is not ASCII).
  await page.fill('#target', 'https://example.org/second');
  await page.click('#copy-link');
  await page.waitForFunction(() => document.querySelector('#link-url code')?.textContent.includes('/c/'));
  await page.fill('#target', 'https://exämple.org/');
  await page.click('#copy-link');
  await page.waitForFunction(() => /Could not make the link/.test(document.querySelector('#link-status').textContent));
  assert.equal(await page.isHidden('#link-url'), true, 'no link shown beside a refused destination');
  await context.close();
});

test('the page of a campaign that does not exist offers no export and no new pixel', async () => {
  const { context, page } = await newPage(browser, srv, { storageState: state });
  await page.goto('/#/campaigns/no-such-campaign');
  await page.waitForSelector('[role="alert"]');
  assert.match(await page.textContent('main'), /no campaign “no-such-campaign”/);
  for (const sel of ['#export-csv', '#export-json', '#delete-campaign', '#archive']) {
    assert.equal(await page.isVisible(sel), false, `${sel} is not offered`);
  }
  assert.equal(await page.$$eval('main a.button', (a) => a.filter((x) => x.offsetParent && /New pixel/.test(x.textContent)).length), 0);
  await context.close();
});

test('clients go by the names people know, the raw values stay in the details; a click says what a click is', async () => {
  const { context, page, seen } = await campaignPage();
  const summary = async (id) => page.textContent(`#log li[data-event-id="${id}"] summary`);
  const ios = await summary(ids.ios);
  assert.match(ios, /Apple Mail \(iOS\)/);
  assert.doesNotMatch(ios, /WKWebView/);
  const mac = await summary(ids.mac);
  assert.match(mac, /Apple Mail on macOS 10\.15\.7/);
  assert.doesNotMatch(mac, /605\.1\.15/, 'not WebKit’s version as the app’s');
  const iosItem = await expand(page, ids.ios);
  assert.match(await page.textContent(`${iosItem} .event-body`), /parsed: Mobile Safari UI\/WKWebView/, 'the raw value is kept');

  const clickItem = await expand(page, ids.click);
  const note = await page.textContent(`${clickItem} .class-note`);
  assert.doesNotMatch(note, /mail client fetched it/);
  assert.match(note, /followed the link/);
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test('per-recipient dates use the log’s format, to the second; a long address stays on one line on a phone', async () => {
  const { context, page } = await campaignPage({ viewport: { width: 375, height: 800 } });
  await page.waitForSelector('#recipients tbody th');
  const rowTimes = await page.$$eval('#recipients tbody tr', (trs) => trs.map((tr) => [tr.querySelector('th').textContent, [...tr.querySelectorAll('time')].map((t) => t.textContent)]));
  const ios = rowTimes.find(([r]) => r === 'ios@example.com');
  assert.ok(ios, JSON.stringify(rowTimes));
  const logTime = await page.textContent(`#log li[data-event-id="${ids.ios}"] time`);
  assert.equal(ios[1][0], logTime, 'the first open reads as the log does');
  assert.match(logTime, /\d\d:\d\d:\d\d/, 'to the second');

  const [height, lineHeight, title] = await page.$$eval('#recipients tbody th', (ths, long) => {
    const th = ths.find((x) => x.textContent === long);
    const cs = getComputedStyle(th);
    return [th.getBoundingClientRect().height, parseFloat(cs.lineHeight) || parseFloat(cs.fontSize) * 1.45, th.querySelector('[title]')?.getAttribute('title')];
  }, LONG);
  assert.ok(height < 1.8 * lineHeight, `the address takes ${height}px for a ${lineHeight}px line`);
  assert.equal(title, LONG, 'the whole address is in its title');
  await context.close();
});

test('a German browser gets one language: no German dates or relative times in the English page', async () => {
  const context = await browser.newContext({ locale: 'de-DE', timezoneId: 'Europe/Berlin', baseURL: srv.base, storageState: state });
  const page = await context.newPage();
  await page.goto('/#/campaigns');
  await page.waitForSelector('#campaign-cards li');
  await page.waitForTimeout(200);
  const list = await page.textContent('main');
  await page.goto(`/#/campaigns/${CAMPAIGN}`);
  await page.waitForSelector('#log li');
  const one = await page.textContent('main');
  for (const text of [list, one]) {
    assert.doesNotMatch(text, /\bvor \d|Sekunde|Minute[n]?\b|Stunde|\bDez\.|\bJan\.|\bUhr\b|\bMEZ\b/, 'no German words');
  }
  assert.match(one, /Europe\/Berlin/, 'the browser’s zone is the default, and it is shown');
  await context.close();
});
