// Browser tests: the log filtered and paged on the server, the recipients sorted on the
// server by their column headers, and a recipient's page (timeline across campaigns, erase).
// SPDX-License-Identifier: MIT

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, session, request } from './harness.mjs';

const UA = {
  iphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
  gmail: 'Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)',
  thunderbird: 'Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0',
};
const CAMPAIGN = 'search';

let srv;
let browser;
let state; // one login for every test here: none of them tests the login

async function openAs(campaign, recipient, ua, k = 0) {
  const r = await request(`${srv.base}/spy-pixel.gif?campaign=${campaign}&email=${encodeURIComponent(recipient)}`,
    { headers: { 'User-Agent': ua }, localAddress: `127.0.2.${1 + (k % 200)}` });
  assert.equal(r.status, 200);
}

before(async () => {
  srv = await startServer();
  browser = await launchBrowser();
  state = await session(browser, srv);
  await srv.api('POST', '/campaigns', { id: CAMPAIGN });
  await srv.api('POST', '/campaigns', { id: 'other' });
  // 250 proxy opens among 400, so that the filtered log needs more than one page.
  const jobs = [];
  for (let i = 0; i < 400; i++) jobs.push([i % 8 < 5 ? UA.gmail : UA.thunderbird, `p${i % 40}@example.com`, i]);
  for (let i = 0; i < jobs.length; i += 20) await Promise.all(jobs.slice(i, i + 20).map(([ua, r, k]) => openAs(CAMPAIGN, r, ua, k)));
  // zoe opens most, amy first in the alphabet; zoe is in another campaign too.
  for (let i = 0; i < 15; i++) await openAs(CAMPAIGN, 'zoe@example.com', UA.iphone, i);
  await openAs(CAMPAIGN, 'amy@example.com', UA.iphone, 3);
  await openAs('other', 'zoe@example.com', UA.thunderbird, 4);
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

async function page0(hash) {
  const p = await newPage(browser, srv, { storageState: state });
  await p.page.goto(`/${hash}`);
  return p;
}

test('the log filters on the server and pages with “Show older”', async () => {
  const { context, page, seen } = await page0(`#/campaigns/${CAMPAIGN}`);
  await page.waitForSelector('#log li');
  const asked = [];
  page.on('request', (r) => {
    if (r.url().includes('/events?')) asked.push(new URL(r.url()).searchParams);
  });
  await page.selectOption('#f-class', 'proxy');
  await page.click('#f-apply');
  await page.waitForFunction(() => /filtered/.test(document.querySelector('#log-status').textContent));
  assert.equal(asked.at(-1).get('class'), 'proxy');
  const classes = async () => page.$$eval('#log > li .badge:not(.click)', (b) => b.map((x) => x.textContent));
  let shown = await classes();
  assert.equal(shown.length, 100, 'one page');
  assert.ok(shown.every((c) => c === 'proxy'), JSON.stringify([...new Set(shown)]));
  assert.equal(await page.isVisible('#log-more'), true);
  await page.click('#log-more');
  await page.waitForFunction(() => document.querySelectorAll('#log > li').length === 200);
  assert.ok(asked.at(-1).get('before'), 'older ones by keyset');
  assert.equal(asked.at(-1).get('class'), 'proxy', 'with the same filter');
  shown = await classes();
  assert.ok(shown.every((c) => c === 'proxy'));
  const ids = await page.$$eval('#log > li', (l) => l.map((li) => li.dataset.eventId));
  assert.equal(new Set(ids).size, ids.length, 'no event twice');
  await page.click('#log-more');
  await page.waitForFunction(() => document.querySelectorAll('#log > li').length === 250);
  await page.waitForSelector('#log-more', { state: 'hidden' });

  // By recipient, and a range with nothing in it.
  await page.click('#f-reset');
  await page.fill('#f-recipient', 'zoe@example.com');
  await page.click('#f-apply');
  await page.waitForFunction(() => document.querySelectorAll('#log > li').length === 15);
  assert.ok((await page.$$eval('#log .ev-recipient', (l) => l.map((x) => x.textContent))).every((r) => r === 'zoe@example.com'));
  await page.click('button[data-range="custom"]');
  await page.fill('#range-from', '2020-01-01T00:00');
  await page.fill('#range-to', '2020-01-31T00:00');
  await page.click('#range-apply');
  await page.waitForFunction(() => /Nothing matches/.test(document.querySelector('#log-status').textContent));
  assert.ok(asked.at(-1).get('from') && asked.at(-1).get('to'));
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test('the recipients sort on the server by the column headers', async () => {
  const { context, page } = await page0(`#/campaigns/${CAMPAIGN}`);
  await page.waitForSelector('#recipients tbody th');
  const first = async () => page.textContent('#recipients tbody tr th');
  await page.click('#recipients button[data-sort="views"]');
  await page.waitForFunction(() => document.querySelector('#recipients tbody tr th')?.textContent === 'zoe@example.com');
  assert.equal(await page.getAttribute('#recipients th:has(button[data-sort="views"])', 'aria-sort'), 'descending');
  await page.click('#recipients button[data-sort="recipient"]');
  await page.waitForFunction(() => document.querySelector('#recipients tbody tr th')?.textContent === 'amy@example.com');
  await page.click('#recipients button[data-sort="recipient"]');
  await page.waitForFunction(() => document.querySelector('#recipients tbody tr th')?.textContent === 'zoe@example.com');
  assert.equal(await page.getAttribute('#recipients th:has(button[data-sort="recipient"])', 'aria-sort'), 'descending');
  assert.equal(await first(), 'zoe@example.com');
  await context.close();
});

test('a recipient’s page shows their timeline across campaigns, and erases them after a confirmation', async () => {
  const { context, page, seen } = await page0(`#/campaigns/${CAMPAIGN}`);
  await page.waitForSelector('#recipients tbody th a');
  await page.click('#recipients a[href="#/recipients/zoe%40example.com"]');
  await page.waitForSelector('#timeline li');
  const campaigns = await page.$$eval('#timeline .ev-campaign', (l) => l.map((x) => x.textContent));
  assert.equal(campaigns.length, 16);
  assert.deepEqual([...new Set(campaigns)].sort(), ['other', CAMPAIGN].sort());
  await page.click('#erase-recipient');
  await page.waitForSelector('dialog[open]');
  assert.match(await page.textContent('dialog[open]'), /Erase zoe@example\.com\?/);
  await page.click('#confirm-ok');
  await page.waitForFunction(() => /Erased: 16 events deleted/.test(document.querySelector('#recipient-status').textContent));
  const left = await srv.api('GET', `/campaigns/${CAMPAIGN}/events?limit=1000`);
  assert.ok(!left.some((e) => e.recipient === 'zoe@example.com'));
  assert.deepEqual(seen.errors, []);
  await context.close();
});
