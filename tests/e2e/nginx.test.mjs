// nginx: docs/nginx.conf as it is, with loopback ports and a throw-away certificate in
// place of its host's values, in front of two spypixel nodes that share one PostgreSQL
// store: nginx runs as its own master with its prefix, pid and logs in a temporary
// folder. Opens through either node land once, the client's address is nginx's peer (a
// client's X-Forwarded-For or Forwarded is not believed), cookies are Secure and the URLs
// handed out start with --public-url.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ROOT, UA, freePort, request, startServer, tempDir, waitFor } from './harness.mjs';
import { httpsRequest, makeCA } from './tls.mjs';

const PG = process.env.SPYPIXEL_TEST_PG;
const NGINX = '/usr/sbin/nginx';

function psql(conninfo, sql) {
  return new Promise((resolve, reject) => {
    execFile('psql', [conninfo, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql], { timeout: 20000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`psql: ${err.message}\n${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

/** docs/nginx.conf with each of REPLACE's [from, to] done (each must be there). */
async function docsConfig(replace) {
  let text = await readFile(path.join(ROOT, 'docs/nginx.conf'), 'utf8');
  for (const [from, to] of replace) {
    assert.ok(text.includes(from), `docs/nginx.conf no longer holds '${from}': update this test with it`);
    text = text.replaceAll(from, to);
  }
  return text;
}

const haveNginx = await new Promise((resolve) => execFile(NGINX, ['-v'], (err) => resolve(!err)));

describe('two nodes behind nginx, one PostgreSQL', { skip: (!PG && 'SPYPIXEL_TEST_PG is unset') || (!haveNginx && 'nginx is not installed') }, () => {
  const db = `spypixel_nginx_${randomBytes(6).toString('hex')}`;
  const conninfo = PG ? `${PG.replace(/\bdbname=\S+/, '')} dbname=${db}` : '';
  let dir;
  let pki;
  let nginx;
  let nginxLog = '';
  let base;
  let a;
  let b;

  before(async () => {
    await psql(PG, `CREATE DATABASE ${db}`);
    dir = await tempDir('spypixel-nginx-');
    await chmod(dir, 0o755); // nginx's workers may run as nobody
    pki = await makeCA(dir);
    const pair = await pki.cert('edge', 'localhost');
    const [httpPort, tlsPort] = [await freePort(), await freePort()];
    base = `https://127.0.0.1:${tlsPort}`;

    process.env.SPYPIXEL_STORE = 'postgres';
    process.env.SPYPIXEL_PG = conninfo;
    const flags = ['--trusted-proxy', '127.0.0.1', '--public-url', base];
    a = await startServer({ campaigns: ['edge'], flags });
    b = await startServer({ flags });

    const site = await docsConfig([
      ['server 127.0.0.1:8081;', `server 127.0.0.1:${a.port};`],
      ['server 127.0.0.1:8082;', `server 127.0.0.1:${b.port};`],
      ['listen 80;', `listen 127.0.0.1:${httpPort};`],
      ['listen 443 ssl;', `listen 127.0.0.1:${tlsPort} ssl;`],
      ['/etc/letsencrypt/live/t.example.com/fullchain.pem', pair.cert],
      ['/etc/letsencrypt/live/t.example.com/privkey.pem', pair.key],
    ]);
    await writeFile(path.join(dir, 'spypixel.conf'), site);
    for (const t of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'logs']) {
      await mkdir(path.join(dir, t), { recursive: true });
      await chmod(path.join(dir, t), 0o777);
    }
    await writeFile(path.join(dir, 'nginx.conf'), `
daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log ${dir}/logs/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/spypixel.conf;
}
`);
    nginx = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'logs/error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
    nginx.stdout.on('data', (d) => { nginxLog += d; });
    nginx.stderr.on('data', (d) => { nginxLog += d; });
    await waitFor(async () => {
      try { return (await httpsRequest(`${base}/healthz`, { ca: pki.ca })).status === 200; } catch { return false; }
    }, { timeoutMs: 15000, what: `nginx on ${base} (${nginxLog})` });
  });

  after(async () => {
    if (nginx && nginx.exitCode === null) {
      nginx.kill('SIGTERM');
      await new Promise((resolve) => nginx.on('exit', resolve));
    }
    await a?.stop();
    await b?.stop();
    delete process.env.SPYPIXEL_STORE;
    delete process.env.SPYPIXEL_PG;
    if (PG) await psql(PG, `DROP DATABASE IF EXISTS ${db}`);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('opens through nginx reach both nodes and land once each', async () => {
    const before = await Promise.all([a, b].map(async (s) => (await s.metrics()).spypixel_http_requests_total || 0));
    const n = 20;
    for (let i = 0; i < n; i++) {
      const r = await httpsRequest(`${base}/spy-pixel.gif?campaign=edge&email=r${i % 5}@example.com`, { ca: pki.ca, headers: { 'User-Agent': UA.thunderbird } });
      assert.equal(r.status, 200);
      assert.equal(r.body.length, 43);
    }
    const served = await Promise.all([a, b].map(async (s, i) => ((await s.metrics()).spypixel_http_requests_total || 0) - before[i]));
    assert.ok(served[0] > 0 && served[1] > 0, `both nodes answered: ${served}`);
    await a.indexed();
    await b.indexed();
    assert.equal(await psql(conninfo, "SELECT count(*) FROM events WHERE campaign = 'edge'"), String(n));
    const c = (await httpsRequest(`${base}/api/v1/campaigns/edge`, { ca: pki.ca, headers: { Authorization: `Bearer ${a.token}` } }));
    assert.equal(c.status, 200, c.text);
    const camp = JSON.parse(c.text);
    assert.equal(camp.total_views, n);
    assert.equal(camp.unique_views, 5);
  });

  test('the client is nginx\'s peer, whatever it writes in X-Forwarded-For or Forwarded', async () => {
    const r = await httpsRequest(`${base}/spy-pixel.gif?campaign=edge&email=liar@example.com`, {
      ca: pki.ca, headers: { 'User-Agent': UA.chrome, 'X-Forwarded-For': '203.0.113.9', Forwarded: 'for=198.51.100.7' },
    });
    assert.equal(r.status, 200);
    await a.indexed();
    await b.indexed();
    const ip = await psql(conninfo, "SELECT ip FROM events WHERE recipient = 'liar@example.com'");
    assert.equal(ip, '127.0.0.1');
  });

  test('through nginx: Secure cookies, HSTS, URLs on --public-url that either node records', async () => {
    const login = await httpsRequest(`${base}/api/v1/login`, { ca: pki.ca, method: 'POST', body: { user: a.user, password: a.password } });
    assert.equal(login.status, 200, login.text);
    for (const c of [].concat(login.headers['set-cookie'])) assert.match(c, /; Secure/);
    assert.equal(login.headers['strict-transport-security'], 'max-age=31536000');
    const made = JSON.parse((await httpsRequest(`${base}/api/v1/pixels`, { ca: pki.ca, method: 'POST', body: { campaign: 'edge', recipient: 'opaque@example.com' }, headers: { Authorization: `Bearer ${b.token}` } })).text);
    assert.ok(made.url.startsWith(`${base}/o/`), made.url);
    for (let i = 0; i < 4; i++) assert.equal((await httpsRequest(made.url, { ca: pki.ca, headers: { 'User-Agent': UA.thunderbird } })).status, 200);
    await a.indexed();
    await b.indexed();
    assert.equal(await psql(conninfo, "SELECT count(*) FROM events WHERE recipient = 'opaque@example.com'"), '4');
    // The plain HTTP server of the file sends browsers on to HTTPS.
    const plainPort = Number(/listen 127\.0\.0\.1:(\d+);/.exec(await readFile(path.join(dir, 'spypixel.conf'), 'utf8'))[1]);
    const redirect = await request(`http://127.0.0.1:${plainPort}/spy-pixel.gif?campaign=edge`);
    assert.equal(redirect.status, 301);
  });
});
