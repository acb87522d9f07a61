// The command line: --version, --help everywhere, errors for unknown commands and bad flags,
// user/token/campaign/forget, and settings from flags, environment and a --config file
// (flags win over the environment, which wins over the file).
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { freePort, prepareData, request, run, startRaw, startServer, tempDir } from './harness.mjs';

const dirs = [];
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function dir() {
  const d = await tempDir();
  dirs.push(d);
  return d;
}

/** The commands `spypixel --help` lists. */
async function commands() {
  const r = await run(['--help']);
  const block = r.stdout.split(/\n\s*\n/).find((b) => /^Commands:/m.test(b)) || '';
  return block.split('\n').slice(1).map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
}

/** Runs each argument list; all must exit non-zero, uncrashed, with a message on stderr. */
async function expectFailures(list) {
  const wrong = [];
  for (const args of list) {
    const r = await run(args, { input: 'a good long password\n', timeoutMs: 10000 });
    const line = `spypixel ${args.join(' ')}`;
    if (r.code === 0) wrong.push(`${line}: exits 0`);
    else if (r.signal) wrong.push(`${line}: killed by ${r.signal}`);
    else if (!r.stderr.trim()) wrong.push(`${line}: no message on stderr`);
  }
  assert.deepEqual(wrong, []);
}

describe('help and errors', () => {
  test('--version prints the version and exits 0', async () => {
    const r = await run(['--version']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^spypixel \d+\.\d+\.\d+/);
  });

  test('--help prints usage with every command and exits 0', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage/);
    const cmds = await commands();
    for (const c of ['serve', 'user', 'token', 'campaign', 'forget']) assert.ok(cmds.includes(c), `--help lists ${c}`);
  });

  test('--help on every subcommand prints its usage and exits 0', async () => {
    const cmds = new Set([...(await commands()), 'serve', 'user', 'token', 'campaign', 'forget']);
    for (const c of cmds) {
      const r = await run([c, '--help']);
      assert.equal(r.code, 0, `${c} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`usage: spypixel ${c}\\b`, 'i'), `${c} --help prints its usage`);
    }
    const deeper = await run(['user', 'add', '--help']);
    assert.equal(deeper.code, 0);
    assert.match(deeper.stdout, /--password-stdin/);
  });

  test('no command, an unknown command or a bad flag exits non-zero with a message on stderr', async () => {
    const d = await dir();
    const l0 = ['--listen', '127.0.0.1:0', '--no-geoip']; // never the default port, should one start
    const bad = [
      [],
      ['frobnicate'],
      ['serve', '--bogus', '--data', d, ...l0],
      ['serve', '--threads', 'many', '--data', d, ...l0],
      ['serve', '--threads', '-1', '--data', d, ...l0],
      ['serve', '--listen'],
      ['serve', '--store', 'mysql', '--data', d, ...l0],
      ['serve', '--trusted-proxy', 'not-a-cidr', '--data', d, ...l0],
      ['serve', '--trusted-proxy', '10.0.0.0/33', '--data', d, ...l0],
      ['serve', '--listen', 'nowhere', '--data', d, '--no-geoip'],
      ['serve', '--log-level', 'loud', '--data', d, ...l0],
      ['serve', '--config', path.join(d, 'missing.conf'), ...l0],
      ['campaign', 'create', 'x', '--bogus', '--data', d],
      ['campaign', 'delete', 'x', '--data', d],
      ['token', 'create', 't', '--bogus', '--data', d],
      ['token', 'create', '--data', d],
      ['forget', 'r', '--bogus', '--data', d],
      ['user', 'remove', 'bob', '--data', d],
    ];
    await expectFailures(bad);
  });

  test('user add refuses unknown flags and extra arguments', async () => {
    const d = await dir();
    await expectFailures([
      ['user', 'add', 'bob', '--password-stdin', '--bogus', '--data', d],
      ['user', 'add', 'bob', 'extra', '--password-stdin', '--data', d],
    ]);
  });
});

describe('user, token, campaign', () => {
  test('user add: password on stdin, at least 8 characters; the user can log in', async () => {
    const d = await dir();
    for (const [pw, ok] of [['', false], ['short', false], ['1234567', false], ['12345678', true]]) {
      const r = await run(['user', 'add', 'ann', '--password-stdin', '--data', d], { input: `${pw}\n` });
      assert.equal(r.code === 0, ok, `password of ${pw.length} characters: exit ${r.code} ${r.stderr}`);
      if (!ok) assert.ok(r.stderr.length > 0);
    }
    const noStdin = await run(['user', 'add', 'ann', '--data', d], { input: 'longenough\n' });
    assert.notEqual(noStdin.code, 0, 'without --password-stdin');
    const bad = await run(['user', 'add', '<b>', '--password-stdin', '--data', d], { input: 'longenough\n' });
    assert.notEqual(bad.code, 0, 'bad user name');
    // Changing the password works; the old one no longer logs in.
    assert.equal((await run(['user', 'add', 'ann', '--password-stdin', '--data', d], { input: 'second password\n' })).code, 0);
    const data = await prepareData({ dataDir: d, user: 'bob', password: 'bobs password' });
    const s = await startServer({ ...data, keepData: true });
    try {
      assert.equal((await s.login('ann', 'second password')).res.status, 200);
      assert.equal((await s.login('ann', '12345678')).res.status, 401);
      assert.equal((await s.login('ann', 'second passwor')).res.status, 401);
    } finally {
      await s.stop({ keep: true });
    }
  });

  test('token create prints one spt_ token on stdout, different each time, each usable', async () => {
    const d = await dir();
    const a = await run(['token', 'create', 'one', '--data', d]);
    const b = await run(['token', 'create', 'two', '--data', d]);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /^spt_[A-Za-z0-9_-]{20,}\n$/);
    assert.match(b.stdout, /^spt_[A-Za-z0-9_-]{20,}\n$/);
    assert.notEqual(a.stdout, b.stdout);
    const s = await startServer({ dataDir: d, token: a.stdout.trim(), keepData: true });
    try {
      assert.equal((await s.api('GET', '/campaigns')).status, 200);
      const r = await request(`${s.base}/api/v1/campaigns`, { headers: { Authorization: `Bearer ${b.stdout.trim()}` } });
      assert.equal(r.status, 200);
      // The token itself is not stored in the data folder, only its hash.
      const { readFile } = await import('node:fs/promises');
      const db = await readFile(path.join(d, 'spypixel.db'));
      assert.ok(!db.includes(a.stdout.trim()), 'the token is stored in clear');
    } finally {
      await s.stop({ keep: true });
    }
  });

  test('campaign create: new and existing exit 0, a bad ID does not', async () => {
    const d = await dir();
    assert.equal((await run(['campaign', 'create', 'spring-2025', '--data', d])).code, 0);
    assert.equal((await run(['campaign', 'create', 'spring-2025', '--data', d])).code, 0);
    for (const id of ['bad id', '<script>', 'x'.repeat(129), '']) {
      const r = await run(['campaign', 'create', id, '--data', d]);
      assert.notEqual(r.code, 0, `campaign ${JSON.stringify(id)}`);
    }
    const tok = (await run(['token', 'create', 't', '--data', d])).stdout.trim();
    const s = await startServer({ dataDir: d, token: tok, keepData: true });
    try {
      const list = await s.apiOk('GET', '/campaigns');
      assert.deepEqual(list.map((c) => c.id), ['spring-2025']);
    } finally {
      await s.stop({ keep: true });
    }
  });
});

describe('settings: flags over environment over file', () => {
  test('--listen beats SPYPIXEL_LISTEN beats listen = in --config', async () => {
    const d = await dir();
    const [pf, pe, pc] = [await freePort(), await freePort(), await freePort()];
    const conf = path.join(d, 'spypixel.conf');
    await writeFile(conf, `# settings\n\nlisten = 127.0.0.1:${pf}\ndata = ${d}\n  no-geoip = true  \n`);
    const ports = [pf, pe, pc];
    const env = { SPYPIXEL_LISTEN: `127.0.0.1:${pe}` };

    let s = await startRaw(['serve', '--config', conf, '--listen', `127.0.0.1:${pc}`], { env, ports });
    try { assert.equal(s.port, pc, 'the flag wins'); } finally { assert.equal((await s.stop()).code, 0); }

    s = await startRaw(['serve', '--config', conf], { env, ports });
    try { assert.equal(s.port, pe, 'the environment beats the file'); } finally { await s.stop(); }

    s = await startRaw(['serve', '--config', conf], { env: { SPYPIXEL_LISTEN: '' }, ports });
    try { assert.equal(s.port, pf, 'the file alone'); } finally { await s.stop(); }

    // The file's data folder was used: a token made there works.
    const tok = (await run(['token', 'create', 't', '--data', d])).stdout.trim();
    s = await startRaw(['serve', '--config', conf], { env: { SPYPIXEL_LISTEN: '' }, ports: [pf] });
    try {
      const r = await request(`http://127.0.0.1:${pf}/api/v1/campaigns`, { headers: { Authorization: `Bearer ${tok}` } });
      assert.equal(r.status, 200, 'data = in the file chose the data folder');
    } finally { await s.stop(); }
  });

  test('SPYPIXEL_DATA chooses the data folder; --data beats it', async () => {
    const envDir = await dir();
    const flagDir = await dir();
    const envTok = (await run(['token', 'create', 't'], { env: { SPYPIXEL_DATA: envDir } })).stdout.trim();
    assert.match(envTok, /^spt_/, 'token create honours SPYPIXEL_DATA');
    const flagTok = (await run(['token', 'create', 't', '--data', flagDir])).stdout.trim();
    const port = await freePort();
    const api = (tok) => request(`http://127.0.0.1:${port}/api/v1/campaigns`, { headers: { Authorization: `Bearer ${tok}` } });

    let s = await startRaw(['serve', '--no-geoip'], { env: { SPYPIXEL_DATA: envDir, SPYPIXEL_LISTEN: `127.0.0.1:${port}` }, ports: [port] });
    try {
      assert.equal((await api(envTok)).status, 200);
      assert.equal((await api(flagTok)).status, 401);
    } finally { await s.stop(); }

    s = await startRaw(['serve', '--no-geoip', '--data', flagDir], { env: { SPYPIXEL_DATA: envDir, SPYPIXEL_LISTEN: `127.0.0.1:${port}` }, ports: [port] });
    try {
      assert.equal((await api(flagTok)).status, 200);
      assert.equal((await api(envTok)).status, 401);
    } finally { await s.stop(); }
  });

  test('a bad line in the --config file is an error naming the file and line', async () => {
    const d = await dir();
    const conf = path.join(d, 'bad.conf');
    await writeFile(conf, `data = ${d}\nthis is not a setting\n`);
    const r = await run(['serve', '--config', conf]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /bad\.conf:2/);
    await writeFile(conf, `data = ${d}\nunknown-key = 1\n`);
    const r2 = await run(['serve', '--config', conf]);
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /unknown-key/);
  });
});
