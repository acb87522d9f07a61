// Browser tests: the tracking block in Chromium, as a webmail page shows a message: kept open
// 10 s it is read, closed after 1 s glanced; print media records a print; quoted in a
// forwarded message (a blockquote, Outlook's and Thunderbird's forward headers) a forward.
// SPDX-License-Identifier: MIT

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer, launchBrowser, freePort, newPage, login } from './harness.mjs';

// A person's Chromium: the headless agent would be a machine's open, never measured.
const AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';

let srv;
let browser;
let mail; // the "webmail" that serves each message's HTML
let mailBase;
const messages = new Map();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  srv = await startServer();
  browser = await launchBrowser();
  mail = http.createServer((req, res) => {
    const html = messages.get(req.url);
    res.writeHead(html ? 200 : 404, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(html || 'no such message');
  });
  const port = await freePort();
  await new Promise((r) => mail.listen(port, '127.0.0.1', r));
  mailBase = `http://127.0.0.1:${port}`;
});

after(async () => {
  await browser?.close();
  await srv?.stop();
  await new Promise((r) => mail?.close(r));
});

/** A message for RECIPIENT whose body is WRAP(block); resolves its URL on the webmail. */
async function message(campaign, recipient, wrap = (b) => b) {
  const { html } = await srv.api('POST', '/pixels', { campaign, recipient, block: true });
  const name = `/${campaign}/${encodeURIComponent(recipient)}`;
  messages.set(name, `<!doctype html><html><body><p>Hello,</p><p>the news.</p>${wrap(html)}</body></html>`);
  return `${mailBase}${name}`;
}

async function show(url) {
  const context = await browser.newContext({ userAgent: AGENT });
  const page = await context.newPage();
  // Not 'load': the held image keeps the page loading until it ends (20 s).
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  return { context, page };
}

async function eventsUntil(campaign, ok, what) {
  const deadline = Date.now() + 10000;
  let evs = [];
  while (Date.now() < deadline) {
    evs = await srv.events(campaign);
    if (ok(evs)) return evs;
    await sleep(100);
  }
  assert.fail(`${what}: ${JSON.stringify(evs.map((e) => [e.kind, e.recipient, e.class, e.engagement, e.read_ms]))}`);
}

test('kept open 10 s the block is read; closed after 1 s it is glanced', async () => {
  const [long, short] = await Promise.all([
    message('reading', 'reader@example.com').then(show),
    message('reading', 'glancer@example.com').then(show),
  ]);
  await sleep(1000);
  await short.context.close();
  await sleep(9000);
  await long.context.close();
  const evs = await eventsUntil('reading', (e) => e.length === 2 && e.every((x) => x.engagement), 'both reads');
  const by = Object.fromEntries(evs.map((e) => [e.recipient, e]));
  assert.equal(by['reader@example.com'].class, 'human');
  assert.equal(by['reader@example.com'].engagement, 'read');
  assert.ok(by['reader@example.com'].read_ms >= 9000, `read ${by['reader@example.com'].read_ms} ms`);
  assert.equal(by['glancer@example.com'].engagement, 'glanced');
  assert.ok(by['glancer@example.com'].read_ms < 2000, `glanced ${by['glancer@example.com'].read_ms} ms`);
  assert.ok(!evs.some((e) => e.kind !== 'open'), 'neither printed nor forwarded');
});

test('print media records a print of the recipient\'s message', async () => {
  const { context, page } = await show(await message('printing', 'printer@example.com'));
  await page.emulateMedia({ media: 'print' });
  const evs = await eventsUntil('printing', (e) => e.some((x) => x.kind === 'print'), 'a print');
  await context.close();
  const print = evs.find((e) => e.kind === 'print');
  assert.equal(print.recipient, 'printer@example.com');
  assert.ok(!evs.some((e) => e.kind === 'forward'));
});

test('the block quoted in a forwarded message records a forward: blockquote, Outlook, Thunderbird', async () => {
  const forwards = {
    'quote@example.com': (b) => `<p>FYI</p><blockquote type="cite">${b}</blockquote>`,
    'outlook@example.com': (b) => `<p>FYI</p><div class="OutlookMessageHeader"><b>From:</b> news</div><div>${b}</div>`,
    'thunderbird@example.com': (b) => `<p>FYI</p><div class="moz-forward-container">-------- Forwarded Message --------`
      + `<table class="moz-email-headers-table"><tr><th>Subject:</th><td>news</td></tr></table><br>${b}</div>`,
  };
  const shown = await Promise.all(Object.entries(forwards).map(([r, wrap]) => message('fwd', r, wrap).then(show)));
  const evs = await eventsUntil('fwd', (e) => e.filter((x) => x.kind === 'forward').length === 3, 'three forwards');
  await Promise.all(shown.map((s) => s.context.close()));
  assert.deepEqual(evs.filter((e) => e.kind === 'forward').map((e) => e.recipient).sort(), Object.keys(forwards).sort());
  // The original, not quoted, records none.
  const plain = await show(await message('unfwd', 'orig@example.com'));
  await eventsUntil('unfwd', (e) => e.some((x) => x.kind === 'open'), 'the open');
  await sleep(300);
  await plain.context.close();
  assert.ok(!(await srv.events('unfwd')).some((e) => e.kind === 'forward'));
});

test('the campaign page shows opens by engagement with prints and forwards; the creator makes a block', async () => {
  const { context, page, seen } = await newPage(browser, srv, { clipboard: true });
  await login(page, srv);
  await page.goto('/#/campaigns/reading');
  await page.waitForSelector('#engagement');
  assert.equal(await page.textContent('#engagement-read dd'), '1');
  assert.equal(await page.textContent('#engagement-glanced dd'), '1');
  assert.equal(await page.textContent('#engagement-skimmed dd'), '0');
  assert.equal(await page.locator('.engagement-bar span').count(), 2);
  await page.goto('/#/campaigns/fwd');
  await page.waitForSelector('#engagement');
  assert.equal(await page.textContent('#engagement-forwards dd'), '3');
  await page.goto('/#/create');
  await page.fill('#campaign', 'made-in-creator');
  await page.check('#block');
  await page.click('#copy-pixel');
  await page.waitForSelector('#snippet:not([hidden])');
  assert.match(await page.textContent('#snippet-html'), /^<style>@media print/);
  assert.deepEqual(seen.errors, []);
  await context.close();
});
