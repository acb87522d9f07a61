// Browser tests: managing campaigns from the dashboard. Two campaigns side by side, an image
// uploaded as a tracker (previewed from the file, never loaded from its tracked address),
// links with their clicks, archive and delete (after a confirmation).
// SPDX-License-Identifier: MIT

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, session, request } from './harness.mjs';

const IPHONE_UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148';
// A 1x1 PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');

let srv;
let browser;
let state; // one login for every test here: none of them tests the login

before(async () => {
  srv = await startServer();
  browser = await launchBrowser();
  state = await session(browser, srv);
  for (let i = 0; i < 3; i++) await srv.open(await srv.pixel('spring', `s${i}@example.com`), { 'User-Agent': IPHONE_UA }, `127.0.0.${2 + i}`);
  await srv.open(await srv.pixel('autumn', 'a0@example.com'), { 'User-Agent': IPHONE_UA }, '127.0.0.9');
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

test('two campaigns compare side by side, over one range, from their reports', async () => {
  const { context, page, seen } = await newPage(browser, srv, { storageState: state });
  await page.goto('/#/compare?a=spring');
  await page.waitForSelector('#compare-b option[value="autumn"]', { state: 'attached' });
  await page.selectOption('#compare-b', 'autumn');
  await page.waitForSelector('#compare-table');
  assert.match(await page.evaluate(() => location.hash), /a=spring&b=autumn/);
  const rows = await page.$$eval('#compare-table tbody tr', (trs) => Object.fromEntries(trs.map((tr) => [tr.querySelector('th').textContent, [...tr.querySelectorAll('td')].map((td) => td.textContent)])));
  assert.deepEqual(rows['Total views'], ['3', '1']);
  assert.deepEqual(rows['Sent'], ['no list', 'no list']);
  assert.equal(await page.$$eval('#compare-body svg.time-chart', (s) => s.length), 2);
  // Both are asked for the same range.
  const asked = [];
  page.on('request', (r) => {
    if (r.url().includes('/report?')) asked.push(new URL(r.url()).searchParams.get('from'));
  });
  await page.click('button[data-range="7d"]');
  await page.waitForFunction(() => /Last 7 days/.test(document.querySelector('#compare-status').textContent));
  assert.equal(asked.length, 2);
  assert.equal(asked[0], asked[1]);
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test('an image uploads as a tracker: previewed from the file, its snippet copied, its address never loaded here', async () => {
  const { context, page, seen } = await newPage(browser, srv, { clipboard: true, storageState: state });
  await page.goto('/#/create?campaign=spring');
  await page.setInputFiles('#image-file', { name: 'logo.png', mimeType: 'image/png', buffer: PNG });
  await page.waitForSelector('#image-preview:not([hidden])');
  assert.match(await page.getAttribute('#image-preview', 'src'), /^data:image\/png;base64,/);
  await page.fill('#image-alt', 'Our "logo" <b>');
  await page.click('#upload-image');
  await page.waitForSelector('#image-result:not([hidden])');
  const html = await page.textContent('#image-html');
  assert.match(html, /^<img src="http:\/\/127\.0\.0\.1:\d+\/i\/[^"]+\.png" alt="Our &quot;logo&quot; &lt;b&gt;" width="1" height="1">$/);
  assert.match(await page.textContent('#image-status'), /Uploaded/);
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(clip, html);
  assert.ok(!seen.requests.some((u) => u.includes('/i/')), 'the tracked image was not loaded by the dashboard');
  // A file that is not an image is refused before any upload.
  await page.setInputFiles('#image-file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  assert.match(await page.textContent('#image-error'), /Not a PNG, GIF, JPEG or WebP/);
  assert.equal(await page.isDisabled('#upload-image'), true);
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test('the links table shows each destination’s clicks, and everything made for the campaign is listed', async () => {
  const link = await srv.api('POST', '/links', { campaign: 'spring', recipient: 's1@example.com', target: 'https://example.org/sale' });
  for (const ip of ['127.0.0.20', '127.0.0.21']) {
    assert.equal((await request(link.url, { headers: { 'User-Agent': IPHONE_UA }, localAddress: ip })).status, 302);
  }
  const { context, page, seen } = await newPage(browser, srv, { storageState: state });
  await page.goto('/#/campaigns/spring');
  await page.waitForSelector('#links-table tbody tr');
  const row = await page.$eval('#links-table tbody tr', (tr) => [...tr.children].map((c) => c.textContent));
  assert.equal(row[0], 'https://example.org/sale');
  assert.deepEqual(row.slice(1, 4), ['1', '2', '1'], 'one link made, two clicks, one clicker');
  assert.match(row[4], /\d\d:\d\d:\d\d/);
  await page.click('#trackers summary');
  await page.waitForSelector('#trackers-table tbody tr');
  const kinds = await page.$$eval('#trackers-table tbody th', (ths) => ths.map((t) => t.textContent));
  assert.ok(kinds.includes('link') && kinds.includes('pixel'), JSON.stringify(kinds));
  assert.ok(!seen.requests.some((u) => /\/(o|c|i)\//.test(new URL(u).pathname)), 'no tracker was loaded by the page');
  await context.close();
});

test('a campaign is archived (off the list, shown on demand) and back, then deleted after a confirmation', async () => {
  const { context, page, seen } = await newPage(browser, srv, { storageState: state });
  await page.goto('/#/campaigns/autumn');
  await page.waitForSelector('#archive');
  await page.click('#archive');
  await page.waitForFunction(() => /Archived/.test(document.querySelector('#campaign-status').textContent));
  // The note follows the status once the campaign is read again.
  await page.waitForSelector('#archived-note', { state: 'visible' });
  assert.equal(await page.isVisible('#archived-note'), true);
  assert.equal(await page.textContent('#archive'), 'Unarchive');
  assert.equal((await srv.api('GET', '/campaigns/autumn')).archived, true);

  await page.goto('/#/campaigns');
  await page.waitForSelector('#campaign-cards li');
  const ids = async () => page.$$eval('#campaign-cards > li', (l) => l.map((li) => li.dataset.campaign));
  assert.ok(!(await ids()).includes('autumn'), 'an archived campaign is off the list');
  assert.match(await page.textContent('#show-archived-label'), /Show 1 archived campaign/);
  await page.check('#show-archived');
  await page.waitForSelector('#campaign-cards li[data-campaign="autumn"]');
  assert.match(await page.textContent('#campaign-cards li[data-campaign="autumn"]'), /archived/);

  await page.goto('/#/campaigns/autumn');
  await page.waitForSelector('#archive');
  // Clicked before the campaign is read, the button would archive it again.
  await page.waitForFunction(() => document.querySelector('#archive').textContent === 'Unarchive');
  await page.click('#archive');
  await page.waitForFunction(() => document.querySelector('#archive').textContent === 'Archive');
  assert.equal((await srv.api('GET', '/campaigns/autumn')).archived, false);

  // Delete: a dialog first; Cancel keeps it, confirming erases it and its events.
  await page.click('#delete-campaign');
  await page.waitForSelector('dialog[open]');
  assert.match(await page.textContent('dialog[open]'), /Delete campaign autumn\?.*1 open/s);
  await page.click('#confirm-cancel');
  assert.equal((await srv.api('GET', '/campaigns/autumn')).id, 'autumn');
  await page.click('#delete-campaign');
  await page.click('#confirm-ok');
  await page.waitForFunction(() => /Deleted campaign autumn and its 1 event\./.test(document.querySelector('#unknown-status')?.textContent || ''));
  const r = await request(`${srv.base}/api/v1/campaigns/autumn`, { headers: { Authorization: `Bearer ${srv.token}` } });
  assert.equal(r.status, 404);
  assert.ok(!(await ids()).includes('autumn'));
  assert.deepEqual(seen.errors, []);
  await context.close();
});
