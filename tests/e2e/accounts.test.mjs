// The user and token commands: list (JSON, or tab-separated lines off a terminal), passwd,
// delete, revoke; a listing never shows a secret.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { request, run, sqlite, startServer, tempDir } from './harness.mjs';

const dirs = [];
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function dir() {
  const d = await tempDir();
  dirs.push(d);
  return d;
}

async function ok(args, input) {
  const r = await run(args, { input });
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return r;
}

describe('user', () => {
  test('list, passwd, delete; no password hash is ever shown', async () => {
    const d = await dir();
    await ok(['user', 'add', 'bob', '--password-stdin', '--data', d], 'bob password\n');
    await ok(['user', 'add', 'ann', '--password-stdin', '--data', d], 'ann password\n');
    await ok(['token', 'create', 'bobs', '--user', 'bob', '--data', d]);
    const json = JSON.parse((await ok(['user', 'list', '--json', '--data', d])).stdout);
    assert.deepEqual(json.map((u) => u.name), ['ann', 'bob']);
    assert.deepEqual(Object.keys(json[0]).sort(), ['created_at', 'name', 'sessions', 'tokens']);
    assert.match(json[0].created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(json[1].tokens, 1);
    assert.equal(json[1].sessions, 0);
    // Off a terminal: one tab-separated line per user, no header.
    const lines = (await ok(['user', 'list', '--data', d])).stdout.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.deepEqual(lines.map((l) => l.split('\t')[0]), ['ann', 'bob']);
    assert.equal(lines[1].split('\t').length, 4);
    const hashes = await sqlite(path.join(d, 'spypixel.db'), 'SELECT pwhash FROM users');
    for (const h of hashes.trim().split('\n')) {
      for (const out of [JSON.stringify(json), lines.join('\n')]) assert.ok(!out.includes(h.slice(-20)), 'a hash is shown');
    }

    // passwd: an existing user only; the new password works, the old one does not.
    assert.equal((await run(['user', 'passwd', 'zed', '--password-stdin', '--data', d], { input: 'long enough\n' })).code, 1);
    await ok(['user', 'passwd', 'ann', '--password-stdin', '--data', d], 'ann new password\n');
    assert.equal((await run(['user', 'passwd', 'ann', '--password-stdin', '--data', d], { input: 'short\n' })).code, 2);
    const s = await startServer({ dataDir: d, token: (await ok(['token', 'create', 'e2e', '--data', d])).stdout.trim(), keepData: true });
    try {
      assert.equal((await s.login('ann', 'ann new password')).res.status, 200);
      assert.equal((await s.login('ann', 'ann password')).res.status, 401);
      assert.equal(JSON.parse((await ok(['user', 'list', '--json', '--data', d])).stdout)[0].sessions, 1);
    } finally {
      await s.stop({ keep: true });
    }

    // delete: the user and the tokens it owns go; deleting again fails.
    await ok(['user', 'delete', 'bob', '--data', d]);
    assert.equal((await run(['user', 'delete', 'bob', '--data', d])).code, 1);
    assert.deepEqual(JSON.parse((await ok(['user', 'list', '--json', '--data', d])).stdout).map((u) => u.name), ['ann']);
    const tokens = JSON.parse((await ok(['token', 'list', '--json', '--data', d])).stdout);
    assert.deepEqual(tokens.map((t) => t.name), ['e2e']);
  });

  test('usage errors exit 2 with the usage', async () => {
    const d = await dir();
    for (const args of [['user'], ['user', 'list', 'extra'], ['user', 'delete'], ['user', 'delete', 'a', 'b'],
      ['user', 'passwd', 'ann'], ['user', 'list', '--password-stdin'], ['user', 'delete', 'ann', '--json'],
      ['user', 'delete', '<b>'], ['token'], ['token', 'revoke'], ['token', 'list', 'x'], ['token', 'list', '--user', 'ann'],
      ['token', 'create', 'x', '--user'], ['token', 'create', 'x', '--user', '<b>'], ['token', 'frob', 'x']]) {
      const r = await run([...args, '--data', d], { input: 'long enough\n' });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.code} ${r.stderr}`);
      assert.ok(r.stderr.length > 0);
      assert.equal(r.stdout, '');
    }
    for (const cmd of ['user', 'token']) {
      const h = await run([cmd, '--help']);
      assert.equal(h.code, 0);
      assert.match(h.stdout, cmd === 'user' ? /user passwd NAME/ : /token revoke ID\|NAME/);
    }
  });
});

describe('token', () => {
  test('list shows IDs, never a token or its hash; revoke by ID or by name', async () => {
    const d = await dir();
    await ok(['user', 'add', 'ann', '--password-stdin', '--data', d], 'ann password\n');
    const made = {};
    for (const [name, owner] of [['ci', null], ['deploy', 'ann'], ['deploy', null], ['keep', null]]) {
      const r = await ok(['token', 'create', name, ...(owner ? ['--user', owner] : []), '--data', d]);
      made[`${name}/${owner}`] = r.stdout.trim();
    }
    assert.equal((await run(['token', 'create', 'x', '--user', 'nobody', '--data', d])).code, 1);
    const list = JSON.parse((await ok(['token', 'list', '--json', '--data', d])).stdout);
    assert.deepEqual(list.map((t) => [t.name, t.user]), [['ci', null], ['deploy', 'ann'], ['deploy', null], ['keep', null]]);
    for (const t of list) assert.match(t.id, /^[0-9a-f]{12}$/);
    const text = JSON.stringify(list) + (await ok(['token', 'list', '--data', d])).stdout;
    const hashes = (await sqlite(path.join(d, 'spypixel.db'), 'SELECT hash FROM api_tokens')).trim().split('\n');
    for (const secret of Object.values(made)) assert.ok(!text.includes(secret), 'a token is shown');
    for (const h of hashes) assert.ok(!text.includes(h), 'a whole hash is shown');

    const s = await startServer({ dataDir: d, token: made['keep/null'], keepData: true });
    const status = (t) => request(`${s.base}/api/v1/me`, { headers: { Authorization: `Bearer ${t}` } }).then((r) => r.status);
    try {
      assert.equal(await status(made['ci/null']), 200);
      await ok(['token', 'revoke', list[0].id, '--data', d]);
      assert.equal(await status(made['ci/null']), 401, 'revoked by ID, on a running server');
      const both = await ok(['token', 'revoke', 'deploy', '--data', d]);
      assert.match(both.stderr, /2 tokens revoked/);
      assert.equal(await status(made['deploy/ann']), 401);
      assert.equal(await status(made['deploy/null']), 401);
      assert.equal(await status(made['keep/null']), 200);
      const none = await run(['token', 'revoke', 'deploy', '--data', d]);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /token list/);
    } finally {
      await s.stop({ keep: true });
    }
  });
});
