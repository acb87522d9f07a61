// scan: the recipient's side through the real binary: `spypixel scan` finds the trackers
// of a message (engagement tracking too: print and forward CSS, shared cleardot images),
// says nothing of a clean one, fails loudly on a missing file, and --strip writes a message
// whose trackers are gone and whose other content stays.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';

import { BIN, ROOT, run } from './harness.mjs';

const DATA = path.join(ROOT, 'tests/data/scan');

/** Runs BIN ARGS with INPUT (a Buffer) on stdin; resolves {code, stdout, stderr}. */
function pipe(args, input) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** The body of the MIME part whose headers contain TYPE, transfer encoding undone. */
function partBody(message, type) {
  const boundary = /boundary="([^"]+)"/.exec(message)[1];
  const part = message.split(`--${boundary}`).find((p) => p.includes(`Content-Type: ${type}`));
  assert.ok(part, `a ${type} part`);
  const split = part.search(/\r?\n\r?\n/);
  const headers = part.slice(0, split);
  const body = part.slice(split).trim();
  if (/Content-Transfer-Encoding: base64/i.test(headers)) return Buffer.from(body, 'base64').toString('utf8');
  if (/Content-Transfer-Encoding: quoted-printable/i.test(headers)) {
    const bytes = body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
    return Buffer.from(bytes, 'latin1').toString('utf8');
  }
  return body;
}

describe('spypixel scan', () => {
  test('--json lists a newsletter\'s open pixel and tracked links, each with url and reason', async () => {
    const r = await run(['scan', '--json', path.join(DATA, 'newsletter.eml')]);
    assert.equal(r.code, 0, r.stderr);
    const found = JSON.parse(r.stdout);
    assert.ok(Array.isArray(found) && found.length > 0);
    for (const f of found) {
      assert.match(f.url, /^https?:\/\//);
      assert.ok(f.reason && f.reason.length > 10, `a reason for ${f.url}`);
    }
    const pixel = found.find((f) => f.kind === 'pixel');
    assert.ok(pixel, 'the open pixel is found');
    assert.match(pixel.url, /list-manage\.com\/track\/open/);
    assert.ok(found.some((f) => f.kind === 'link'), 'a tracked link is found');
  });

  test('--json finds print tracking, forward detection and engagement hosts, each with its reason', async () => {
    const r = await run(['scan', '--json', path.join(DATA, 'engagement.eml')]);
    assert.equal(r.code, 0, r.stderr);
    const found = JSON.parse(r.stdout);
    const byRule = (rule) => found.filter((f) => f.rules.some((m) => m.rule === rule));
    for (const f of found) {
      assert.match(f.url, /^https:\/\//);
      assert.ok(f.reason.length > 20 && f.rule, `a rule and a reason for ${f.url}`);
    }
    const prints = byRule('print-css');
    assert.deepEqual(prints.map((f) => f.url).sort(), [
      'https://pulse.gardenweekly.example/e/8f3a2c71/print-masthead.gif',
      'https://pulse.gardenweekly.example/e/8f3a2c71?p&r=ZmVyZ3Vz',
    ]);
    assert.ok(prints.every((f) => f.kind === 'pixel' && /printed/.test(f.reason)));
    const forwards = byRule('forward-css');
    assert.equal(forwards.length, 1);
    assert.equal(forwards[0].url, 'https://pulse.gardenweekly.example/e/8f3a2c71?f&r=ZmVyZ3Vz');
    assert.match(forwards[0].reason, /OutlookMessageHeader/);
    assert.equal(byRule('email-on-acid')[0]?.vendor, 'Email on Acid');
    assert.equal(byRule('hubspot-open').length, 1);
    assert.equal(byRule('niftyimages').length, 1);
    assert.equal(found.length, 6);
    assert.equal(found.some((f) => /cdn\.gardenweekly|not-a-url|\/e\/dead/.test(f.url)), false,
      'ordinary CSS images, a URL in a comment and one in a string are no trackers');
  });

  test('--json finds Gmail\'s cleardot.gif, which carries no ID, with its own reason', async () => {
    const r = await run(['scan', '--json', path.join(DATA, 'cleardot.eml')]);
    assert.equal(r.code, 0, r.stderr);
    const found = JSON.parse(r.stdout);
    const gmail = found.find((f) => f.rule === 'gmail-cleardot');
    assert.ok(gmail, 'the cleardot is found');
    assert.equal(gmail.url, 'https://mail.google.com/mail/u/0/images/cleardot.gif');
    assert.equal(gmail.kind, 'pixel');
    assert.match(gmail.reason, /cookies/);
    assert.ok(found.some((f) => f.rule === 'gstatic-cleardot'));
    assert.equal(found.length, 2);
  });

  test('--strip takes out the print and forward rules and the pixels, and keeps the rest', async () => {
    const input = path.join(DATA, 'engagement.eml');
    const stripped = await run(['scan', '--strip', input]);
    assert.equal(stripped.code, 0, stripped.stderr);
    assert.match(stripped.stderr, /Removed: 6/);
    const out = stripped.stdout;
    // It parses, and nothing in it tracks any more.
    const again = await pipe(['scan', '--json', '-'], Buffer.from(out));
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout), []);
    // The MIME structure stays: both parts, the same boundary, the sender's encodings.
    assert.match(out, /Content-Type: multipart\/alternative/);
    assert.equal(out.split('--===============0795818366676672649==').length, 4);
    const text = partBody(out, 'text/plain');
    assert.match(text, /Dear Fergus, the soil is warm enough/);
    const html = partBody(out, 'text/html');
    for (const gone of ['8f3a2c71', 'OutlookMessageHeader', 'moz-email-headers-table', 'eoapxl', 'e1t/o', 'niftyimages'])
      assert.equal(html.includes(gone), false, `${gone} is gone`);
    for (const kept of ['.noprint { display: none; }', 'hero-spring.jpg', 'hero-small.jpg',
      '<h1>Spring planting guide</h1>', 'tomatoes.jpg', '<p>Sale ends in 3 days</p>', 'Garden Weekly, 4 Potting Lane'])
      assert.ok(html.includes(kept), `${kept} is kept`);
  });

  test('--strip of a base64 message drops the cleardots and keeps base64 and the photo', async () => {
    const stripped = await run(['scan', '--strip', path.join(DATA, 'cleardot.eml')]);
    assert.equal(stripped.code, 0, stripped.stderr);
    const again = await pipe(['scan', '--json', '-'], Buffer.from(stripped.stdout));
    assert.deepEqual(JSON.parse(again.stdout), []);
    const html = partBody(stripped.stdout, 'text/html');
    assert.equal(html.includes('cleardot'), false);
    assert.match(html, /photo-of-the-whiteboard\.jpg/);
    assert.match(html, /gmail_quote/);
    assert.match(html, /Here are the minutes of Tuesday's meeting\./);
  });

  test('a clean message has no findings', async () => {
    const r = await run(['scan', '--json', path.join(DATA, 'clean.eml')]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), []);
  });

  test('an mbox is read message by message', async () => {
    const r = await run(['scan', '--json', path.join(DATA, 'three.mbox')]);
    assert.equal(r.code, 0, r.stderr);
    const messages = new Set(JSON.parse(r.stdout).map((f) => f.message));
    assert.ok(messages.size >= 2, `findings in ${[...messages]}`);
  });

  test('a missing file is an error on stderr and a non-zero exit', async () => {
    const r = await run(['scan', path.join(DATA, 'no-such-file.eml')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no-such-file\.eml/);
    assert.equal(r.stdout.includes('no-such-file'), false, 'the error is not on stdout');
  });

  test('--strip writes the message without its pixel', async () => {
    const stripped = await run(['scan', '--strip', path.join(DATA, 'newsletter.eml')]);
    assert.equal(stripped.code, 0, stripped.stderr);
    assert.match(stripped.stdout, /^[\s\S]*Subject:/, 'a whole message comes out');
    assert.equal(/track\/open/.test(stripped.stdout), false, 'the open pixel is gone');
    const again = await pipe(['scan', '--json', '-'], Buffer.from(stripped.stdout));
    assert.equal(again.code, 0, again.stderr);
    assert.equal(JSON.parse(again.stdout).some((f) => f.kind === 'pixel'), false);
  });
});
