// manage: the commands that manage what the server keeps, run beside a server on the same
// data folder (the server shows each change at once): campaign list|show|delete, pixel
// (the API's own snippet, and its quoted-printable form), forget's words, each command's
// own --help, the settings table, --log-format json, and the words for an unwritable data
// folder and for a dashboard tab that closes.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, rm } from 'node:fs/promises';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { BIN, UA, run, sleep, startServer, tempDir } from './harness.mjs';

const human = { 'User-Agent': UA.thunderbird };

/** Decodes quoted-printable (RFC 2045): soft breaks, then =XX. */
function unQP(text) {
  return text.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
}

describe('campaign list, show and delete beside a running server', () => {
  let s;
  before(async () => {
    s = await startServer({ campaigns: ['spring', 'autumn'] });
    for (const who of ['ann@example.com', 'bob@example.com', 'ann@example.com']) {
      assert.equal((await s.pixel({ campaign: 'spring', email: who }, human)).status, 200);
    }
    assert.equal((await s.pixel({ campaign: 'autumn', email: 'cy@example.com' }, human)).status, 200);
    await s.indexed();
  });
  after(async () => s?.stop());

  test('list prints a table with a header, --json what the API answers', async () => {
    const r = await run(['campaign', 'list', '--data', s.dataDir]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^ID\s+TOTAL\s+UNIQUE\s+MACHINE\s+SELF\s+CLICKS\s+LAST VIEW\s+CREATED$/);
    const spring = lines.find((l) => l.startsWith('spring '));
    assert.match(spring, /^spring\s+3\s+2\s+0\s+0\s+0\s+\d{4}-\d\d-\d\dT/);
    const j = await run(['campaign', 'list', '--json', '--data', s.dataDir]);
    assert.equal(j.code, 0);
    const api = await s.apiOk('GET', '/campaigns');
    assert.deepEqual(JSON.parse(j.stdout).map((c) => [c.id, c.total_views, c.unique_views]),
      api.map((c) => [c.id, c.total_views, c.unique_views]));
  });

  test('show prints one campaign and its recipients', async () => {
    const r = await run(['campaign', 'show', 'spring', '--data', s.dataDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /total views\s+3/);
    assert.match(r.stdout, /unique views\s+2/);
    assert.match(r.stdout, /^ann@example\.com\s+2\s/m);
    const j = JSON.parse((await run(['campaign', 'show', 'spring', '--json', '--data', s.dataDir])).stdout);
    assert.equal(j.total_views, 3);
    assert.deepEqual(j.per_recipient.map((x) => [x.recipient, x.views]), [['ann@example.com', 2], ['bob@example.com', 1]]);
    const missing = await run(['campaign', 'show', 'nope', '--data', s.dataDir]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no such campaign/);
  });

  test('create and delete show at once on the running server; delete wants --yes', async () => {
    assert.equal((await run(['campaign', 'create', 'winter', '--data', s.dataDir])).code, 0);
    assert.ok((await s.apiOk('GET', '/campaigns')).some((c) => c.id === 'winter'), 'created: listed by the server');

    const asked = await run(['campaign', 'delete', 'spring', '--data', s.dataDir]);
    assert.equal(asked.code, 2);
    assert.match(asked.stderr, /--yes/);
    assert.equal((await s.campaign('spring')).total_views, 3, 'nothing erased without --yes');

    const del = await run(['campaign', 'delete', 'spring', '--yes', '--data', s.dataDir]);
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stderr, /campaign spring deleted: 3 events erased/);
    assert.equal((await s.api('GET', '/campaigns/spring')).status, 404, 'gone from the server at once');
    assert.ok(!(await s.apiOk('GET', '/campaigns')).some((c) => c.id === 'spring'));
    assert.equal((await s.campaign('autumn')).total_views, 1, 'the other campaign keeps its opens');

    const again = await run(['campaign', 'delete', 'spring', '--yes', '--data', s.dataDir]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no such campaign/);
  });
});

describe('pixel', () => {
  test('prints the HTML the API makes, signed with the same key; --qp its quoted-printable form', async () => {
    const s = await startServer({ flags: ['--public-url', 'https://t.example.com'] });
    try {
      const made = await s.apiOk('POST', '/pixels', { campaign: 'mail-1', recipient: 'dee+news@example.com' });
      const r = await run(['pixel', '--campaign', 'mail-1', '--recipient', 'dee+news@example.com', '--public-url', 'https://t.example.com', '--data', s.dataDir]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${made.html}\n`);
      assert.ok(!r.stdout.includes('dee'), 'no readable address in it');

      const qp = await run(['pixel', '--campaign', 'mail-1', '--recipient', 'dee+news@example.com', '--qp', '--public-url', 'https://t.example.com', '--data', s.dataDir]);
      assert.equal(qp.code, 0);
      for (const line of qp.stdout.replace(/\n$/, '').split('\r\n')) assert.ok(line.length <= 76, `a line of ${line.length}`);
      assert.match(qp.stdout, /src=3D"https:\/\/t\.example\.com\/o\//);
      assert.equal(unQP(qp.stdout.replace(/\n$/, '')), made.html);

      // A campaign the CLI's pixel names exists at once, and its pixel records on the server.
      const fresh = await run(['pixel', '--campaign', 'mail-2', '--recipient', 'eve@example.com', '--data', s.dataDir]);
      assert.equal(fresh.code, 0);
      assert.match(fresh.stderr, /no --public-url: the pixel points at http:\/\/127\.0\.0\.1:8080/);
      const url = new URL(/src="([^"]+)"/.exec(fresh.stdout)[1]);
      assert.equal((await s.req(url.pathname, { headers: human })).status, 200);
      await s.indexed();
      const c = await s.campaign('mail-2');
      assert.deepEqual(c.per_recipient.map((x) => [x.recipient, x.views]), [['eve@example.com', 1]]);
    } finally {
      await s.stop();
    }
  });
});

describe('words', () => {
  test('forget says how many events it erased, in proper words', async () => {
    const s = await startServer({ campaigns: ['w'] });
    try {
      await s.pixel({ campaign: 'w', email: 'one@example.com' }, human);
      for (let i = 0; i < 3; i++) await s.pixel({ campaign: 'w', email: 'three@example.com' }, human);
      await s.indexed();
      const one = await run(['forget', 'one@example.com', '--data', s.dataDir]);
      assert.match(one.stderr, /^1 event of one@example\.com erased/m);
      const three = await run(['forget', 'three@example.com', '--data', s.dataDir]);
      assert.match(three.stderr, /^3 events of three@example\.com erased/m);
      const none = await run(['forget', 'nobody@example.com', '--data', s.dataDir]);
      assert.match(none.stderr, /no event of nobody@example\.com was stored/);
    } finally {
      await s.stop();
    }
  });

  test('COMMAND --help lists that command\'s own settings only', async () => {
    const serve = (await run(['serve', '--help'])).stdout;
    for (const f of ['--listen', '--tls-cert', '--trusted-proxy', '--data', '--log-format']) assert.match(serve, new RegExp(`${f}\\b`));
    for (const cmd of ['campaign', 'forget', 'user', 'token']) {
      const text = (await run([cmd, '--help'])).stdout;
      assert.match(text, /--data DIR/, cmd);
      for (const f of ['--listen', '--tls-cert', '--threads', '--webhook', '--trusted-proxy']) assert.doesNotMatch(text, new RegExp(`${f}\\b`), `${cmd} --help shows ${f}`);
    }
    assert.match((await run(['pixel', '--help'])).stdout, /--public-url/);
    assert.doesNotMatch((await run(['scan', '--help'])).stdout, /--data DIR/);
  });

  test('settings prints the table as JSON and an example file with every key', async () => {
    const j = JSON.parse((await run(['settings', '--json'])).stdout);
    assert.ok(j.length >= 24);
    const listen = j.find((o) => o.name === 'listen');
    assert.deepEqual([listen.env, listen.default, listen.repeatable], ['SPYPIXEL_LISTEN', '127.0.0.1:8080', true]);
    const example = (await run(['settings', '--example'])).stdout;
    for (const o of j) assert.match(example, new RegExp(`^# ${o.key} =`, 'm'), o.key);
    assert.doesNotMatch(example, /^[^#\n]/m, 'everything commented out');
    const inUse = await run(['settings', '--webhook-secret', 'hush', '--pg', 'password=hush']);
    assert.doesNotMatch(inUse.stdout, /hush/);
  });

  test('--log-format json writes one JSON object a line', async () => {
    const s = await startServer({ flags: ['--log-format', 'json'], campaigns: ['j'] });
    await s.pixel({ campaign: 'nope-"quoted"', email: 'x' }, human);
    await s.stop();
    const lines = s.logs().trim().split('\n');
    assert.ok(lines.length >= 2);
    for (const l of lines) {
      const o = JSON.parse(l);
      assert.equal(typeof o.ts, 'string');
      assert.equal(typeof o.msg, 'string');
    }
    const serving = lines.map((l) => JSON.parse(l)).find((o) => o.msg === 'serving');
    assert.equal(serving.store, 'sqlite');
  });

  test('an unwritable data folder: permission denied, and its path', async () => {
    const d = await tempDir();
    let prefix = [];
    let cmd = BIN;
    if (process.getuid() === 0) {
      // root may write anywhere: run as nobody, in a folder of root's.
      await chmod(d, 0o755);
      cmd = 'setpriv';
      prefix = ['--reuid=65534', '--regid=65534', '--clear-groups', BIN];
    } else {
      await chmod(d, 0o500);
    }
    const go = (args) => new Promise((resolve) => {
      const c = spawn(cmd, [...prefix, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      c.stderr.on('data', (x) => { err += x; });
      c.on('exit', (code) => resolve({ code, err }));
    });
    const served = await go(['serve', '--listen', '127.0.0.1:0', '--data', d, '--no-geoip']);
    assert.equal(served.code, 1);
    assert.match(served.err, /[Pp]ermission denied/);
    assert.ok(served.err.includes(d), served.err);
    assert.doesNotMatch(served.err, /unable to open database file/);
    const listed = await go(['campaign', 'list', '--data', d]);
    assert.equal(listed.code, 1);
    assert.match(listed.err, new RegExp(`data folder ${d.replace(/[/.]/g, '\\$&')}: [Pp]ermission denied`));
    await chmod(d, 0o700);
    await rm(d, { recursive: true, force: true });
  });

  test('a dashboard tab that closes its live stream is not a warning', async () => {
    const s = await startServer({ campaigns: ['live'] });
    try {
      const stream = await new Promise((resolve, reject) => {
        const req = http.get(`${s.base}/api/v1/stream`, { headers: { Authorization: `Bearer ${s.token}` } }, resolve);
        req.on('error', reject);
      });
      assert.equal(stream.statusCode, 200);
      await s.pixel({ campaign: 'live', email: 'a@example.com' }, human);
      await s.indexed();
      stream.destroy(); // the tab closes
      for (let i = 0; i < 3; i++) {
        await s.pixel({ campaign: 'live', email: `b${i}@example.com` }, human);
        await s.indexed();
        await sleep(50);
      }
    } finally {
      await s.stop();
    }
    assert.doesNotMatch(s.logs(), /level=(warn|error)/, s.logs());
  });
});

