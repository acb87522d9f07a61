// The data folder holds the signing key, the sessions and every open: it is private (0700,
// files 0600) whatever the umask, and a folder other users can read is refused, as
// PostgreSQL refuses such a data directory.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { chmod, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { UA, assertPixel, run, startServer, tempDir } from './harness.mjs';

const dirs = [];
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function dir() {
  const d = await tempDir();
  dirs.push(d);
  return d;
}

const mode = async (p) => (await stat(p)).mode & 0o7777;
const octal = (m) => `0${m.toString(8)}`;

/** Every file and folder under DIR with its mode. */
async function modes(root) {
  const out = [[root, await mode(root)]];
  for (const e of await readdir(root, { withFileTypes: true })) {
    const p = path.join(root, e.name);
    if (e.isDirectory()) out.push(...await modes(p));
    else out.push([p, await mode(p)]);
  }
  return out;
}

describe('files and folders are private', () => {
  test('whatever the umask: folders 0700, files 0600', async () => {
    const data = path.join(await dir(), 'data');
    const saved = process.umask(0); // the children inherit the loosest umask
    let s;
    try {
      s = await startServer({ dataDir: data, campaigns: ['files'], keepData: true });
      assertPixel(await s.pixel({ campaign: 'files', email: 'a@example.com' }, { 'User-Agent': UA.thunderbird }));
      await s.indexed();
      const all = await modes(data);
      const names = all.map(([p]) => path.relative(data, p));
      for (const want of ['', 'spypixel.db', 'spypixel.db-wal', 'spypixel.db-shm', 'journal', 'journal/id', 'journal/lock']) {
        assert.ok(names.includes(want), `${want || 'the data folder'} exists: ${names}`);
      }
      assert.ok(names.some((n) => n.endsWith('.jnl')), 'a journal segment');
      for (const [p, m] of all) {
        const folder = (await stat(p)).isDirectory();
        assert.equal(octal(m), folder ? '0700' : '0600', path.relative(data, p) || 'the data folder');
      }
    } finally {
      process.umask(saved);
      await s?.stop({ keep: true });
    }
  });

  test('files an older version left readable are made private when the store is opened', async () => {
    const d = await dir();
    assert.equal((await run(['campaign', 'create', 'x', '--data', d])).code, 0);
    await chmod(path.join(d, 'spypixel.db'), 0o644);
    const r = await run(['campaign', 'create', 'y', '--data', d]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(octal(await mode(path.join(d, 'spypixel.db'))), '0600');
  });
});

describe('a data folder other users can read is refused', () => {
  test('serve and the commands stop with a message that says how to fix it', async () => {
    const d = await dir();
    assert.equal((await run(['campaign', 'create', 'x', '--data', d])).code, 0);
    for (const m of [0o755, 0o750, 0o711, 0o704]) {
      await chmod(d, m);
      for (const args of [['serve', '--listen', '127.0.0.1:0', '--no-geoip'], ['campaign', 'create', 'y'], ['token', 'create', 't']]) {
        const r = await run([...args, '--data', d], { timeoutMs: 10000 });
        assert.notEqual(r.code, 0, `${args[0]} on a ${octal(m)} folder`);
        assert.ok(r.stderr.includes(`chmod 700 ${d}`), `${args[0]}: the fix is named: ${r.stderr}`);
        assert.equal(r.stdout, '', 'nothing was made');
      }
    }
    await chmod(d, 0o700);
    assert.equal((await run(['campaign', 'create', 'y', '--data', d])).code, 0);
  });
});
