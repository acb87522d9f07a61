// Browser tests: the pixel creator (validation, datalist, copy to the clipboard, no self-view).
// SPDX-License-Identifier: MIT

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, login, request } from './harness.mjs';

let srv;
let browser;

before(async () => {
  srv = await startServer();
  browser = await launchBrowser();
  await srv.api('POST', '/campaigns', { id: 'existing-one' });
  await srv.api('POST', '/campaigns', { id: 'existing.two+b@x' });
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

const redish = (rgb) => {
  const [r, g, b] = rgb.match(/\d+/g).map(Number);
  return r > 150 && r > g * 1.6 && r > b * 1.6;
};

test('a bad character turns the input red and disables the copy button', async () => {
  const { context, page } = await newPage(browser, srv);
  await login(page, srv);
  await page.goto('/#/create');
  await page.waitForSelector('#campaign');

  assert.equal(await page.isDisabled('#copy-pixel'), true, 'disabled while the campaign is empty');
  const normalBorder = await page.$eval('#campaign', (el) => getComputedStyle(el).borderTopColor);

  await page.fill('#campaign', 'spring sale!');
  assert.equal(await page.getAttribute('#campaign', 'aria-invalid'), 'true');
  const badBorder = await page.$eval('#campaign', (el) => getComputedStyle(el).borderTopColor);
  assert.notEqual(badBorder, normalBorder);
  assert.ok(redish(badBorder), `border is red: ${badBorder}`);
  assert.equal(await page.isDisabled('#copy-pixel'), true);
  const msg = await page.textContent('#campaign-error');
  assert.match(msg, /space/);
  assert.match(msg, /!/);
  assert.match(await page.textContent('#id-help'), /- _ @ \+ \./, 'the allowed characters are explained');

  await page.fill('#campaign', 'spring-sale_2026@x+y.z');
  assert.equal(await page.getAttribute('#campaign', 'aria-invalid'), 'false');
  assert.equal(await page.isDisabled('#copy-pixel'), false);
  assert.equal(await page.textContent('#campaign-error'), '');

  // The recipient is optional but held to the same characters.
  await page.fill('#recipient', '<b>bob</b>');
  assert.equal(await page.getAttribute('#recipient', 'aria-invalid'), 'true');
  assert.equal(await page.isDisabled('#copy-pixel'), true);
  await page.fill('#recipient', 'bob@example.com');
  assert.equal(await page.isDisabled('#copy-pixel'), false);

  // Too long (129 bytes).
  await page.fill('#campaign', 'a'.repeat(129));
  assert.equal(await page.getAttribute('#campaign', 'aria-invalid'), 'true');
  assert.equal(await page.isDisabled('#copy-pixel'), true);
  await context.close();
});

test('the campaign field offers the existing campaigns', async () => {
  const { context, page } = await newPage(browser, srv);
  await login(page, srv);
  await page.goto('/#/create');
  await page.waitForFunction(() => document.querySelectorAll('#campaign-list option').length >= 2);
  const values = await page.$$eval('#campaign-list option', (os) => os.map((o) => o.value));
  assert.ok(values.includes('existing-one'));
  assert.ok(values.includes('existing.two+b@x'));
  assert.equal(await page.getAttribute('#campaign', 'list'), 'campaign-list');
  await context.close();
});

test('copy puts the pixel on the clipboard as HTML and text, creates the campaign, and records no open', async () => {
  const { context, page, seen } = await newPage(browser, srv, { clipboard: true });
  await login(page, srv);
  await page.goto('/#/create');
  await page.fill('#campaign', 'brand-new');
  await page.fill('#recipient', 'alice@example.com');
  await page.click('#copy-pixel');
  await page.waitForFunction(() => document.querySelector('#copy-status')?.textContent.startsWith('Copied'));

  const clip = await page.evaluate(async () => {
    const out = {};
    for (const item of await navigator.clipboard.read()) {
      for (const type of item.types) out[type] = await (await item.getType(type)).text();
    }
    return out;
  });
  assert.ok(clip['text/html'], `text/html on the clipboard: ${Object.keys(clip)}`);
  assert.ok(clip['text/plain'], 'text/plain on the clipboard');
  const plain = clip['text/plain'];
  assert.match(plain, /^<img src="http:\/\/127\.0\.0\.1:\d+\/o\/[^"]+\.gif" width="1" height="1" alt=""/);
  assert.doesNotMatch(plain, /alice|brand-new/, 'the opaque URL names neither campaign nor recipient');
  const url = plain.match(/src="([^"]+)"/)[1];
  assert.ok(clip['text/html'].includes('<img'), clip['text/html']);
  assert.ok(clip['text/html'].includes(url.replace(/&/g, '&amp;')) || clip['text/html'].includes(url));

  // The snippet shows the same HTML, as text, and where to put it.
  assert.equal(await page.textContent('#snippet-html'), plain);
  assert.match(await page.textContent('#snippet'), /<\/body>/);
  // The pixel was never loaded: no <img> for it in the page and no request for it.
  assert.equal(await page.$$eval('img', (imgs) => imgs.filter((i) => i.src.includes('/o/')).length), 0);
  assert.deepEqual(seen.requests.filter((u) => u.includes('/o/') || u.includes('spy-pixel')), []);

  const list = await srv.api('GET', '/campaigns');
  assert.ok(list.some((c) => c.id === 'brand-new'), 'the campaign was created');
  await new Promise((r) => setTimeout(r, 300));
  const events = await srv.events('brand-new');
  assert.equal(Array.isArray(events) ? events.length : events.events.length, 0, 'copying recorded no open');
  await context.close();
});

test('a tracked link is checked, copied, and records a click that leads to its destination', async () => {
  const { context, page } = await newPage(browser, srv, { clipboard: true });
  await login(page, srv);
  await page.goto('/#/create');
  await page.fill('#campaign', 'links-too');
  await page.fill('#recipient', 'bob@example.com');
  await page.fill('#target', 'javascript:alert(1)');
  assert.equal(await page.getAttribute('#target', 'aria-invalid'), 'true');
  assert.match(await page.textContent('#target-error'), /http/);
  await page.fill('#target', 'https://example.org/offer?x=1');
  assert.equal(await page.getAttribute('#target', 'aria-invalid'), 'false');
  await page.click('#copy-link');
  await page.waitForFunction(() => document.querySelector('#link-status')?.textContent.includes('copied'));
  const url = await page.evaluate(() => navigator.clipboard.readText());
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/c\/[A-Za-z0-9_-]+$/);
  assert.equal((await page.textContent('#link-url')).trim(), url);
  assert.equal((await srv.events('links-too')).length, 0, 'making the link clicked nothing');

  const r = await request(url, { headers: { 'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0' }, localAddress: '127.0.0.7' });
  assert.ok(r.status === 302 || r.status === 303 || r.status === 307, `redirect: ${r.status}`);
  assert.equal(r.headers.location, 'https://example.org/offer?x=1');
  const [click] = await srv.events('links-too');
  assert.equal(click.kind, 'click');
  assert.equal(click.target, 'https://example.org/offer?x=1');
  assert.equal(click.recipient, 'bob@example.com');

  await page.goto('/#/campaigns/links-too');
  await page.waitForSelector('#log .badge.click');
  assert.equal(await page.textContent('#tile-clicks dd'), '1');
  await context.close();
});
