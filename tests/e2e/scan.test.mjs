// scan: the recipient's side through the real binary: `spypixel scan` finds the trackers
// of a message, says nothing of a clean one, fails loudly on a missing file, and --strip
// writes a message whose pixel is gone.
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
