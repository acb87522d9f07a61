// Browser tests: accessibility of every page (axe-core's WCAG A/AA rules) in light and dark,
// and keyboard use: the whole flow from login to an expanded open without a mouse.
// SPDX-License-Identifier: MIT

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startServer, launchBrowser, newPage, login, request } from './harness.mjs';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const CAMPAIGN = 'a11y-check';

let srv;
let browser;

before(async () => {
  srv = await startServer();
  browser = await launchBrowser();
  const url = await srv.pixel(CAMPAIGN, 'alice@example.com');
  await srv.open(url, { 'User-Agent': 'Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)' }, '127.0.0.2');
  await srv.open(url, { 'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0', Cookie: 'a=1' }, '127.0.0.3');
  // An open of a campaign that does not exist: the campaign list shows it apart.
  assert.equal((await request(`${srv.base}/spy-pixel.gif?campaign=a11y-typo&email=bob@example.com`)).status, 200);
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

/** axe-core's violations of impact serious or critical on the page as it is now. */
async function violations(page) {
  // The page's CSP forbids injected scripts: this context was made with bypassCSP.
  await page.addScriptTag({ path: AXE });
  const res = await page.evaluate(async () => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    resultTypes: ['violations'],
  }));
  return res.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.help} (${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')})`);
}

for (const colorScheme of ['light', 'dark']) {
  test(`no serious accessibility violations on any page (${colorScheme})`, async () => {
    const context = await browser.newContext({ bypassCSP: true, colorScheme, baseURL: srv.base, viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto('/');
    await page.waitForSelector('#login-user');
    assert.deepEqual(await violations(page), [], 'login');
    await login(page, srv);

    const pages = [
      ['#/campaigns', '#campaign-cards li'],
      [`#/campaigns/${CAMPAIGN}`, '#log li'],
      [`#/compare?a=${CAMPAIGN}&b=${CAMPAIGN}`, '#compare-table'],
      ['#/recipients/alice@example.com', '#timeline-status'],
      ['#/create', '#campaign'],
      ['#/rules', '#rules tbody tr'],
    ];
    for (const [route, ready] of pages) {
      await page.goto(`/${route}`);
      await page.waitForSelector(ready);
      if (route.startsWith('#/campaigns/')) {
        await page.waitForSelector('#by-client li');
        await page.click('button[data-range="custom"]');
        for (const s of await page.$$('#log summary')) await s.click();
        await page.waitForSelector('#log .event-body');
      }
      if (route === '#/create') await page.fill('#campaign', 'bad id!');
      if (route === '#/campaigns') {
        await page.click('#unknown-campaigns summary');
        await page.waitForSelector('#unknown-campaigns tbody tr');
      }
      assert.deepEqual(await violations(page), [], route);
    }
    await context.close();
  });
}

test('the keyboard alone gets from login to an expanded open', async () => {
  const { context, page } = await newPage(browser, srv);
  await page.goto('/');
  await page.waitForSelector('#login-user');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'login-user', 'the user field has focus');
  await page.keyboard.type(srv.user);
  await page.keyboard.press('Tab');
  await page.keyboard.type(srv.password);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#campaign-cards li');

  // Tab to the campaign's link and follow it.
  let found = false;
  for (let i = 0; i < 30 && !found; i++) {
    await page.keyboard.press('Tab');
    found = await page.evaluate((id) => document.activeElement?.getAttribute('href') === `#/campaigns/${id}`, CAMPAIGN);
  }
  assert.ok(found, 'the campaign link is reachable with Tab');
  const ring = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(ring, 'none', 'the focused link shows a focus ring');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#log li');

  // Tab on to the first open and expand it.
  found = false;
  for (let i = 0; i < 60 && !found; i++) {
    await page.keyboard.press('Tab');
    found = await page.evaluate(() => document.activeElement?.matches('#log summary'));
  }
  assert.ok(found, 'an open in the log is reachable with Tab');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#log .event-body');
  await page.keyboard.press('Enter');
  assert.equal(await page.$eval('#log details', (d) => d.open), false, 'Enter closes it again');
  await context.close();
});

test('the keyboard sorts the recipients, and a delete asks first and Escape keeps the campaign', async () => {
  const { context, page } = await newPage(browser, srv);
  await login(page, srv);
  await page.goto(`/#/campaigns/${CAMPAIGN}`);
  await page.waitForSelector('#recipients tbody th');
  await page.focus('#recipients button[data-sort="views"]');
  const asked = page.waitForRequest((r) => /[?&]sort=views/.test(r.url()));
  await page.keyboard.press('Enter');
  await asked;
  assert.equal(await page.getAttribute('#recipients th:has(button[data-sort="views"])', 'aria-sort'), 'descending');
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.sort), 'views', 'focus stays on the header');

  await page.focus('#delete-campaign');
  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog[open]');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'confirm-cancel', 'Cancel has the focus, not Delete');
  assert.match(await page.textContent('dialog[open]'), /cannot be undone/);
  await page.keyboard.press('Escape');
  await page.waitForSelector('dialog', { state: 'detached' });
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'delete-campaign', 'focus returns to the button');
  const c = await srv.api('GET', `/campaigns/${CAMPAIGN}`);
  assert.equal(c.id, CAMPAIGN, 'the campaign is still there');
  await context.close();
});
