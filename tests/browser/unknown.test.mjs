// Browser test: the campaign list says how many opens came for campaigns that do not exist,
// lists them, and one click creates such a campaign with its opens; another discards one.
// SPDX-License-Identifier: MIT

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, login, request } from './harness.mjs';

const THUNDERBIRD = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0';

let srv;
let browser;

async function open(campaign, email) {
  const q = new URLSearchParams({ campaign, ...(email ? { email } : {}) });
  const r = await request(`${srv.base}/spy-pixel.gif?${q}`, { headers: { 'User-Agent': THUNDERBIRD } });
  assert.equal(r.status, 200);
}

before(async () => {
  srv = await startServer();
  browser = await launchBrowser();
  await srv.api('POST', '/campaigns', { id: 'newsletter-12' });
  // The sent email had a typo in its campaign ID; a scanner tried an ID of its own.
  await open('newsleter-12', 'ann@example.com');
  await open('newsleter-12', 'bob@example.com');
  await open('newsleter-12', 'ann@example.com');
  await open('zz-scan', '');
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

test('the campaign list says so, and one click creates the campaign with its opens', async () => {
  const { context, page, seen } = await newPage(browser, srv);
  await login(page, srv);
  await page.waitForSelector('#unknown-campaigns:not([hidden])');
  assert.equal(await page.textContent('#unknown-title'), '4 opens for campaigns that do not exist');
  assert.equal(await page.isVisible('#unknown-campaigns table'), false, 'the list is folded');
  await page.click('#unknown-campaigns summary');
  const rows = await page.$$eval('#unknown-campaigns tbody tr', (trs) => trs.map((tr) => ({
    id: tr.dataset.unknown,
    cells: [...tr.children].map((td) => td.textContent),
    first: tr.querySelector('time')?.getAttribute('datetime'),
  })));
  assert.deepEqual(rows.map((r) => [r.id, r.cells[0], r.cells[1]]).sort(), [['newsleter-12', 'newsleter-12', '3'], ['zz-scan', 'zz-scan', '1']]);
  const api = await srv.api('GET', '/unknown-campaigns');
  assert.equal(rows.find((r) => r.id === 'newsleter-12').first, api.find((u) => u.id === 'newsleter-12').first_at);
  assert.equal(await page.$('#campaign-cards li[data-campaign="newsleter-12"]'), null);

  await page.click('#unknown-campaigns tr[data-unknown="newsleter-12"] button.adopt');
  await page.waitForSelector('#campaign-cards li[data-campaign="newsleter-12"]');
  assert.equal(await page.textContent('#unknown-status'), 'Created campaign newsleter-12: 3 opens adopted.');
  const card = '#campaign-cards li[data-campaign="newsleter-12"]';
  assert.equal(await page.textContent(`${card} .total dd`), '3');
  assert.equal(await page.textContent(`${card} .unique dd`), '2');
  assert.equal(await page.textContent('#unknown-title'), '1 open for a campaign that does not exist');
  const c = await srv.api('GET', '/campaigns/newsleter-12');
  assert.equal(c.total_views, 3);
  assert.deepEqual(c.per_recipient.map((r) => [r.recipient, r.views]), [['ann@example.com', 2], ['bob@example.com', 1]]);

  // Discarding takes a second click to confirm, and a reload of the list (as a live update
  // makes) keeps the question.
  const discard = '#unknown-campaigns tr[data-unknown="zz-scan"] button.discard';
  await page.click(discard);
  assert.equal(await page.textContent(discard), 'Really discard?');
  await open('zz-scan', 'again');
  await open('newsleter-12', 'cy@example.com'); // a stored open: the live stream reloads the list
  await page.waitForFunction(() => document.querySelector('#unknown-title').textContent === '2 opens for campaigns that do not exist');
  assert.equal(await page.textContent(discard), 'Really discard?');
  assert.equal(await page.getAttribute(discard, 'aria-label'), 'Really discard? zz-scan');
  assert.ok(await page.isVisible('#unknown-campaigns'));
  await page.click(discard);
  await page.waitForSelector('#unknown-campaigns', { state: 'hidden' });
  assert.equal(await page.textContent('#unknown-status'), 'Discarded the opens of zz-scan.');
  assert.equal(await page.textContent(`${card} .total dd`), '4');
  assert.deepEqual(await srv.api('GET', '/unknown-campaigns'), []);
  assert.deepEqual(seen.errors, []);
  assert.deepEqual(seen.dialogs, []);
  await context.close();
});

test('without such opens the campaign list shows no such line', async () => {
  const { context, page, seen } = await newPage(browser, srv);
  await login(page, srv);
  await page.waitForSelector('#campaign-cards li');
  assert.equal(await page.isVisible('#unknown-campaigns'), false);
  assert.deepEqual(seen.errors, []);
  await context.close();
});
