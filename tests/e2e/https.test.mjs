// https: the server speaks TLS itself (throw-away CA and certificates from openssl): curl
// and node talk HTTPS to it, only TLS 1.2 and 1.3 are offered, cookies are Secure and HSTS
// is sent over HTTPS only, SIGHUP swaps the certificate for new handshakes while an old
// connection goes on, a bad pair is refused, systemd hears READY/RELOADING/STOPPING, and
// listen mistakes are said in words.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { copyFile, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { GIF_LENGTH, freePort, run, sleep, startServer, tempDir, waitFor } from './harness.mjs';
import { httpsRequest, makeCA, startTls } from './tls.mjs';

function curl(args) {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', ...args], { timeout: 20000, encoding: 'buffer' }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr: stderr.toString() });
    });
  });
}

let pki;
let dir;
let first;
let second;

before(async () => {
  dir = await tempDir('spypixel-tls-');
  pki = await makeCA(dir);
  first = await pki.cert('first', 'localhost');
  second = await pki.cert('second', 'second.test');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('HTTPS served directly', () => {
  let srv;
  // The files the server reads; the tests swap what they hold.
  let live;

  before(async () => {
    live = { cert: path.join(dir, 'live.pem'), key: path.join(dir, 'live.key') };
    await copyFile(first.cert, live.cert);
    await copyFile(first.key, live.key);
    srv = await startTls({ ...live, flags: [] });
    await run(['campaign', 'create', 'tls-news', '--data', srv.dataDir]);
  });

  after(async () => {
    await srv?.stop();
    await rm(srv?.dataDir || '/nonexistent', { recursive: true, force: true });
  });

  test('curl gets the pixel over HTTPS, checked against the CA', async () => {
    const r = await curl(['--cacert', pki.ca, '-D', '-', `${srv.https}/spy-pixel.gif?campaign=tls-news&email=ann@example.com`]);
    assert.equal(r.code, 0, r.stderr);
    const text = r.stdout.toString('latin1');
    assert.match(text, /^HTTP\/1\.1 200/);
    assert.match(text, /content-type: image\/gif/i);
    assert.ok(text.endsWith(Buffer.from('GIF89a').toString('latin1')) || text.includes('GIF89a'));
    const body = r.stdout.subarray(r.stdout.indexOf('\r\n\r\n') + 4);
    assert.equal(body.length, GIF_LENGTH);
  });

  test('only TLS 1.2 and 1.3 are offered', async () => {
    for (const [flags, ok] of [[['--tlsv1.3'], true], [['--tlsv1.2', '--tls-max', '1.2'], true],
      [['--tlsv1.0', '--tls-max', '1.1'], false], [['--tlsv1.0', '--tls-max', '1.0'], false]]) {
      const r = await curl(['--cacert', pki.ca, '-o', '/dev/null', '-w', '%{http_code}', ...flags, `${srv.https}/healthz`]);
      if (ok) assert.equal(r.stdout.toString(), '200', `${flags}: ${r.stderr}`);
      else assert.notEqual(r.code, 0, `${flags} was accepted`);
    }
  });

  test('over HTTPS the cookies are Secure and HSTS is sent; over plain HTTP neither', async () => {
    const body = { user: srv.user, password: srv.password };
    const tls = await httpsRequest(`${srv.https}/api/v1/login`, { ca: pki.ca, method: 'POST', body });
    assert.equal(tls.status, 200, tls.text);
    const cookies = [].concat(tls.headers['set-cookie']);
    assert.ok(cookies.length >= 2);
    for (const c of cookies) assert.match(c, /; Secure/, c);
    assert.equal(tls.headers['strict-transport-security'], 'max-age=31536000');
    const page = await httpsRequest(`${srv.https}/`, { ca: pki.ca });
    assert.equal(page.status, 200);
    assert.equal(page.headers['strict-transport-security'], 'max-age=31536000');

    const plain = await fetch(`${srv.http}/api/v1/login`, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
    assert.equal(plain.status, 200);
    for (const c of plain.headers.getSetCookie()) assert.doesNotMatch(c, /Secure/, c);
    assert.equal(plain.headers.get('strict-transport-security'), null);
  });

  test('SIGHUP: a new handshake gets the new certificate while an old connection goes on', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const old = await httpsRequest(`${srv.https}/healthz`, { ca: pki.ca, agent });
    assert.equal(old.cn, 'localhost');
    const oldSocket = old.socket;

    await copyFile(second.cert, live.cert);
    await copyFile(second.key, live.key);
    const before = srv.logs().length;
    srv.child.kill('SIGHUP');
    await waitFor(() => srv.logs().slice(before).includes('certificate reloaded'), { what: 'the reload' });

    const fresh = await httpsRequest(`${srv.https}/healthz`, { ca: pki.ca });
    assert.equal(fresh.cn, 'second.test', 'a new handshake takes the new pair');
    const again = await httpsRequest(`${srv.https}/spy-pixel.gif?campaign=tls-news&email=kept@example.com`, { ca: pki.ca, agent });
    assert.equal(again.status, 200);
    assert.equal(again.socket, oldSocket, 'the same connection');
    assert.equal(again.cn, 'localhost', 'which keeps the certificate of its handshake');
    agent.destroy();
    assert.equal(srv.child.exitCode, null, 'the server still runs');
  });

  test('a handshake waiting for the client costs no CPU (no busy loop)', async () => {
    // A relay that passes the ClientHello on, then holds the client's next flight for 3 s.
    let held = () => {};
    const release = new Promise((resolve) => { held = resolve; });
    let firstSent;
    const sent = new Promise((resolve) => { firstSent = resolve; });
    const relay = net.createServer((client) => {
      const up = net.connect(srv.tlsPort, '127.0.0.1');
      up.on('data', (d) => client.write(d));
      let first = true;
      const queue = [];
      let open = false;
      release.then(() => { open = true; for (const d of queue) up.write(d); });
      client.on('data', (d) => {
        if (first) { first = false; up.write(d); firstSent(); } else if (open) up.write(d); else queue.push(d);
      });
      client.on('error', () => up.destroy());
      up.on('error', () => client.destroy());
      client.on('close', () => up.end());
    });
    await new Promise((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const cpu = async () => {
      const f = (await readFile(`/proc/${srv.child.pid}/stat`, 'utf8')).split(') ')[1].split(' ');
      return (Number(f[11]) + Number(f[12])) * 10; // utime + stime, ms at 100 ticks/s
    };
    const conn = tls.connect({ port: relay.address().port, host: '127.0.0.1', ca: await readFile(pki.ca), servername: 'localhost' });
    conn.on('error', () => {});
    await sent;
    await sleep(200); // the server has answered the ClientHello and waits
    const before = await cpu();
    await sleep(3000);
    const spent = (await cpu()) - before;
    held();
    await new Promise((resolve) => { conn.once('secureConnect', resolve); setTimeout(resolve, 5000); });
    conn.destroy();
    relay.close();
    assert.ok(spent < 300, `the server used ${spent} ms of CPU in 3 s of waiting for one handshake`);
  });

  test('SIGHUP with a key that is not the certificate\'s keeps the pair in use, and says why', async () => {
    await copyFile(first.cert, live.cert); // the key still is the second's
    const before = srv.logs().length;
    srv.child.kill('SIGHUP');
    await waitFor(() => srv.logs().slice(before).includes('certificate not reloaded'), { what: 'the refusal' });
    assert.match(srv.logs().slice(before), /is not the key of the certificate/);
    const r = await httpsRequest(`${srv.https}/healthz`, { ca: pki.ca });
    assert.equal(r.status, 200);
    assert.equal(r.cn, 'second.test');
    await copyFile(second.cert, live.cert);
  });
});

describe('listening, in words', () => {
  test('a port in use is said once, without libmicrohttpd\'s words', async () => {
    const srv = await startServer();
    try {
      const dataDir = await tempDir();
      const r = await run(['serve', '--listen', `127.0.0.1:${srv.port}`, '--data', dataDir, '--no-geoip']);
      await rm(dataDir, { recursive: true, force: true });
      assert.equal(r.code, 1);
      assert.equal(r.stderr.match(/address already in use/g)?.length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${srv.port}`));
      assert.doesNotMatch(r.stderr, /Failed to bind|port 0/);
    } finally {
      await srv.stop();
    }
  });

  test('HTTPS needs a certificate, and a certificate needs an HTTPS address', async () => {
    const dataDir = await tempDir();
    const port = await freePort();
    let r = await run(['serve', '--listen', `https://127.0.0.1:${port}`, '--data', dataDir, '--no-geoip']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /needs --tls-cert and --tls-key/);
    r = await run(['serve', '--listen', `http://127.0.0.1:${port}`, '--tls-cert', first.cert, '--tls-key', first.key, '--data', dataDir, '--no-geoip']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /every --listen address is http:\/\//);
    r = await run(['serve', '--tls-cert', first.cert, '--data', dataDir]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--tls-key is missing/);
    r = await run(['serve', '--listen', `https://127.0.0.1:${port}`, '--tls-cert', first.cert, '--tls-key', second.key, '--data', dataDir, '--no-geoip']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is not the key of the certificate/);
    await rm(dataDir, { recursive: true, force: true });
  });

  test('a bare HOST:PORT serves HTTPS when a certificate is set', async () => {
    const data = await tempDir();
    const port = await freePort();
    const child = spawn(process.env.SPYPIXEL_BIN || 'build/spypixel', ['serve', '--listen', `127.0.0.1:${port}`, '--tls-cert', first.cert, '--tls-key', first.key, '--data', data, '--no-geoip'], { stdio: 'ignore' });
    try {
      const r = await waitFor(async () => {
        try { return await httpsRequest(`https://127.0.0.1:${port}/healthz`, { ca: pki.ca }); } catch { return null; }
      }, { what: 'HTTPS on the bare address' });
      assert.equal(r.status, 200);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.on('exit', resolve));
      await rm(data, { recursive: true, force: true });
    }
  });
});

describe('systemd notification', () => {
  test('READY=1 when serving, RELOADING=1 and READY=1 around SIGHUP, STOPPING=1 on SIGTERM', async () => {
    const sockDir = await tempDir('spypixel-notify-');
    const sock = path.join(sockDir, 'notify');
    // socat receives the datagrams sd_notify sends, one after the other.
    const sink = spawn('socat', ['-u', `UNIX-RECV:${sock}`, 'STDOUT'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let heard = '';
    sink.stdout.on('data', (d) => { heard += `${d}\n`; });
    try {
      await waitFor(async () => {
        try { return (await import('node:fs')).existsSync(sock); } catch { return false; }
      }, { what: 'the notify socket' });
      const srv = await startTls({ cert: first.cert, key: first.key, env: { NOTIFY_SOCKET: sock } });
      try {
        await waitFor(() => heard.includes('READY=1'), { what: 'READY=1' });
        srv.child.kill('SIGHUP');
        await waitFor(() => /RELOADING=1[\s\S]*READY=1/.test(heard.slice(heard.indexOf('READY=1') + 7)), { what: `RELOADING=1, READY=1 in ${JSON.stringify(heard)}` });
        assert.match(heard, /MONOTONIC_USEC=\d+/);
      } finally {
        await srv.stop();
        await rm(srv.dataDir, { recursive: true, force: true });
      }
      await waitFor(() => heard.includes('STOPPING=1'), { what: 'STOPPING=1' });
    } finally {
      sink.kill('SIGTERM');
      await sleep(50);
      await rm(sockDir, { recursive: true, force: true });
    }
  });
});
