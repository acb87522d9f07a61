// Browser tests: the campaign page as a report. A campaign of 1,200 opens (more than any one
// page of events), so that a figure computed from a truncated list would show: totals, chart,
// breakdowns, hour and weekday views, the range presets and a custom range, the time zone.
// SPDX-License-Identifier: MIT

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startServer, launchBrowser, newPage, session, request } from './harness.mjs';

const UA = {
  iphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
  gmail: 'Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)',
  thunderbird: 'Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0',
};
const PLAN = [['iphone', 700], ['gmail', 300], ['thunderbird', 200]];
const TOTAL = 1200;
const CAMPAIGN = 'big';

let srv;
let browser;
let state; // one login for every test here: none of them tests the login

before(async () => {
  srv = await startServer();
  browser = await launchBrowser();
  state = await session(browser, srv);
  await srv.api('POST', '/campaigns', { id: CAMPAIGN });
  const jobs = [];
  let n = 0;
  for (const [ua, k] of PLAN) for (let i = 0; i < k; i++) jobs.push([UA[ua], `r${n++}@example.com`]);
  // Twenty at a time, each from its own loopback address.
  for (let i = 0; i < jobs.length; i += 20) {
    await Promise.all(jobs.slice(i, i + 20).map(([ua, r], j) => request(`${srv.base}/spy-pixel.gif?campaign=${CAMPAIGN}&email=${encodeURIComponent(r)}`,
      { headers: { 'User-Agent': ua }, localAddress: `127.0.1.${1 + j}` })));
  }
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

async function open(opts, hash = `#/campaigns/${CAMPAIGN}`) {
  const p = await newPage(browser, srv, { ...opts, storageState: state });
  await p.page.goto(`/${hash}`);
  await p.page.waitForSelector('#by-client li');
  return p;
}

const num = (s) => Number(String(s).replace(/[^\d]/g, ''));

test('every figure on the page is over all 1,200 opens, from the server’s report', async () => {
  const { context, page, seen } = await open();
  const report = await srv.api('GET', `/campaigns/${CAMPAIGN}/report`);
  assert.equal(report.total_views, TOTAL);
  assert.equal(num(await page.textContent('#tile-total dd')), TOTAL);
  assert.equal(num(await page.textContent('#tile-proxy dd')), 300);
  // The chart's summary and the breakdowns add up to all of them, not to a page of events.
  assert.match(await page.getAttribute('#chart svg', 'aria-label'), new RegExp(`\\b${TOTAL} counted`));
  const clients = await page.$$eval('#by-client li', (lis) => lis.map((li) => [li.querySelector('.bar-label').textContent, li.querySelector('.bar-count').textContent]));
  assert.equal(clients.reduce((a, [, c]) => a + num(c), 0), TOTAL, JSON.stringify(clients));
  assert.deepEqual(clients.map(([name]) => name).sort(), ['Apple Mail (iOS)', 'Thunderbird', 'GoogleImageProxy (Gmail)'].sort().filter((x) => clients.some(([n]) => n === x)).sort());
  assert.ok(clients.some(([name, c]) => name === 'Apple Mail (iOS)' && num(c) === 700), 'iPhone Mail under its known name');
  // The proxy's OS is not the reader's: no Windows XP among the systems.
  const systems = await page.$$eval('#by-os li .bar-label', (l) => l.map((x) => x.textContent));
  assert.ok(!systems.includes('Windows XP'), JSON.stringify(systems));
  // Hour of day and weekday: every counted open in one hour and one day.
  const cells = async (id) => page.$$eval(`#${id} td`, (tds) => tds.map((td) => Number(td.textContent)));
  const hours = await cells('by-hour');
  assert.equal(hours.length, 24);
  assert.equal(hours.reduce((a, b) => a + b, 0), TOTAL);
  const days = await cells('by-weekday');
  assert.equal(days.length, 7);
  assert.equal(days.reduce((a, b) => a + b, 0), TOTAL);
  assert.doesNotMatch(await page.textContent('main'), /latest 500|newest 500/);
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test('range presets and a custom range ask the server again; the zone is shown, chosen and remembered', async () => {
  const { context, page, seen } = await open();
  const asked = [];
  page.on('request', (r) => {
    if (r.url().includes('/report?')) asked.push(new URL(r.url()).searchParams);
  });
  assert.equal(await page.getAttribute('button[data-range="all"]', 'aria-pressed'), 'true');
  await page.click('button[data-range="24h"]');
  await page.waitForFunction(() => location.hash.includes('range=24h'));
  await page.waitForFunction(() => /Last 24 hours/.test(document.querySelector('#report-status').textContent));
  const q = asked.at(-1);
  assert.ok(q.get('from'), 'the range starts 24 hours ago');
  assert.ok(Math.abs(Date.now() - 24 * 3600e3 - Date.parse(q.get('from'))) < 120e3, q.get('from'));
  assert.equal(num(await page.textContent('#tile-total dd')), TOTAL);

  // A custom range that ends before any open: nothing in it.
  await page.click('button[data-range="custom"]');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'range-from', 'focus goes to the first date');
  await page.fill('#range-from', '2020-01-01T00:00');
  await page.fill('#range-to', '2020-01-31T00:00');
  await page.click('#range-apply');
  await page.waitForFunction(() => document.querySelector('#tile-total dd')?.textContent === '0');
  assert.match(await page.textContent('#chart'), /No opens in this range/);
  // An end before the start is refused with a message.
  await page.fill('#range-from', '2020-02-01T00:00');
  await page.click('#range-apply');
  assert.match(await page.textContent('#range-error'), /start must come before the end/);

  // The zone: the browser's by default, then chosen, sent and remembered across a reload.
  assert.equal(await page.$eval('#tz', (s) => s.value), 'UTC');
  await page.selectOption('#tz', 'Asia/Tokyo');
  await page.waitForFunction(() => /Asia\/Tokyo/.test(document.querySelector('#report-status')?.textContent || ''));
  assert.equal(asked.at(-1).get('tz'), 'Asia/Tokyo');
  await page.goto('about:blank');
  await page.goto(`/#/campaigns/${CAMPAIGN}`);
  await page.waitForSelector('#by-client li');
  assert.equal(await page.$eval('#tz', (s) => s.value), 'Asia/Tokyo');
  assert.match(await page.textContent('#by-hour h3'), /Asia\/Tokyo/);
  assert.match(await page.textContent('#log time'), /GMT\+9/, 'the log’s times are in the chosen zone');
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test('without a recipient list the rates panel says what the rates need', async () => {
  const { context, page } = await open();
  assert.match(await page.textContent('#rates-need'), /rates need the list of people this campaign was sent to/);
  assert.equal(await page.isVisible('#rate-tiles'), false);
  // The upload control is labelled.
  assert.match(await page.textContent('label[for="list-file"]'), /list of recipients/);
  await context.close();
});

test('a recipient list uploaded as CSV gives the rates, and who never opened downloads', async () => {
  const { context, page, seen } = await open();
  const csv = ['email,name', ...Array.from({ length: 10 }, (_, i) => `r${i}@example.com,Reader ${i}`),
    'never1@example.com,N1', 'never2@example.com,N2', 'not an address,X'].join('\n');
  await page.setInputFiles('#list-file', { name: 'sent.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
  await page.waitForFunction(() => /List saved/.test(document.querySelector('#list-status').textContent));
  assert.match(await page.textContent('#list-status'), /12 recipients\. 1 line was not an address and left out \(not an address\)/);
  await page.waitForSelector('#rate-tiles');
  assert.equal(await page.isVisible('#rates-need'), false);
  const report = await srv.api('GET', `/campaigns/${CAMPAIGN}/report`);
  assert.equal(report.sent, 12);
  assert.equal(await page.textContent('#rate-sent dd:not(.small)'), '12');
  assert.equal(await page.textContent('#rate-open dd:not(.small)'), '83.3%');
  assert.equal(await page.textContent('#rate-click dd:not(.small)'), '0%');
  assert.match(await page.textContent('#not-opened-count'), /^2 of 12 did not open\.$/);
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export-not-opened')]);
  const text = await readFile(await dl.path(), 'utf8');
  assert.deepEqual(text.trim().split(/\r?\n/).filter((l) => /@/.test(l)).map((l) => l.replace(/"/g, '')).sort(), ['never1@example.com', 'never2@example.com']);
  assert.deepEqual(seen.errors, []);
  await context.close();
});
