// text: one open whose request held ill-formed UTF-8 reads the same everywhere it is shown
// (the API's JSON, the CSV export, the live stream, the webhook) and as it is kept, in SQLite
// and in PostgreSQL: each ill-formed part replaced by one U+FFFD, once, before it is stored.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { describe, test } from 'node:test';

import { freePort, parseCsv, sqlite, startServer } from './harness.mjs';

const PG = process.env.SPYPIXEL_TEST_PG;
const FFFD = '\ufffd';

// Header values go out byte for byte as latin1: \u00ff is the byte 0xff.
const BAD_UA = 'agent \u00ff\u00fe \u00e2\u0082x';
const GOOD_UA = `agent ${FFFD}${FFFD} ${FFFD}x`;
const BAD_ODD = '\u00ed\u00a0\u0080 surrogate caf\u00c3\u00a9';
const GOOD_ODD = `${FFFD}${FFFD}${FFFD} surrogate caf\u00e9`;

function psql(conninfo, sql) {
  return new Promise((resolve, reject) => {
    execFile('psql', [conninfo, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql], { timeout: 20000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`psql: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** The first open on SRV's live stream STREAMPATH; OPEN makes it once the stream is open. */
function firstStreamEvent(srv, streamPath, open) {
  let req;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no live event within 10 s')), 10000);
    let buf = '';
    let opened = false;
    req = http.get(`${srv.base}/api/v1${streamPath}`, { headers: { Authorization: `Bearer ${srv.token}` }, agent: false }, (res) => {
      if (res.statusCode !== 200) { clearTimeout(timer); reject(new Error(`stream: ${res.statusCode}`)); return; }
      res.setEncoding('utf8');
      res.on('data', (d) => {
        buf += d;
        const m = /(?:^|\n)event: open\ndata: (.*)\n\n/.exec(buf);
        if (m) { clearTimeout(timer); resolve(JSON.parse(m[1])); }
        else if (!opened && buf.includes(': open')) {
          opened = true;
          open().catch(reject);
        }
      });
      res.on('error', () => {});
    });
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
  }).finally(() => req?.destroy());
}


async function oneText(flags, stored) {
  const got = [];
  const hook = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { body += d; });
    req.on('end', () => { got.push(body); res.end('ok'); });
  });
  const port = await freePort();
  await new Promise((r) => hook.listen(port, '127.0.0.1', r));
  const s = await startServer({ campaigns: ['text'], flags: ['--webhook', `http://127.0.0.1:${port}/hook`, ...flags] });
  try {
    const live = await firstStreamEvent(s, '/campaigns/text/stream', () =>
      s.pixel({ campaign: 'text', email: 'ann@example.com' }, { 'User-Agent': BAD_UA, 'X-Odd': BAD_ODD }));
    await s.indexed();
    const [api] = await s.events('text');
    const deadline = Date.now() + 5000;
    while (!got.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(got.length, 1, 'one webhook POST within 5 s');
    const hooked = JSON.parse(got[0]).event;

    assert.equal(api.user_agent, GOOD_UA);
    assert.equal(api.headers['User-Agent'], GOOD_UA);
    assert.equal(api.headers['X-Odd'], GOOD_ODD);
    assert.deepEqual(live, api, 'the live stream shows the event as the API does');
    assert.deepEqual(hooked, api, 'the webhook sends the event as the API shows it');
    const csv = parseCsv((await s.api('GET', '/campaigns/text/events.csv')).text);
    const [header, line] = csv;
    assert.equal(line[header.indexOf('user_agent')], GOOD_UA);
    assert.deepEqual(JSON.parse(line[header.indexOf('headers')]), api.headers);
    assert.equal(await stored(s), GOOD_UA, 'the store keeps the repaired text');
  } finally {
    await s.stop();
    await new Promise((r) => hook.close(r));
  }
}

describe('one text everywhere', () => {
  test('SQLite: JSON, CSV, live stream, webhook and the database agree', async () => {
    await oneText([], async (s) => {
      const hex = (await sqlite(path.join(s.dataDir, 'spypixel.db'), 'SELECT hex(coalesce(user_agent, (SELECT text FROM agents WHERE id = events.agent))) FROM events')).trim();
      return Buffer.from(hex, 'hex').toString('utf8');
    });
  });

  test('PostgreSQL: the same', { skip: !PG && 'SPYPIXEL_TEST_PG is unset (scripts/run-tests sets it)' }, async () => {
    const db = `spypixel_text_${randomBytes(6).toString('hex')}`;
    const conninfo = `${PG.replace(/\bdbname=\S+/, '')} dbname=${db}`;
    await psql(PG, `CREATE DATABASE ${db}`);
    process.env.SPYPIXEL_STORE = 'postgres';
    process.env.SPYPIXEL_PG = conninfo;
    try {
      await oneText([], async () => {
        const hex = (await psql(conninfo, "SELECT encode(convert_to(coalesce(user_agent, (SELECT text FROM agents WHERE id = events.agent)), 'UTF8'), 'hex') FROM events")).trim();
        return Buffer.from(hex, 'hex').toString('utf8');
      });
    } finally {
      delete process.env.SPYPIXEL_STORE;
      delete process.env.SPYPIXEL_PG;
      await psql(PG, `DROP DATABASE IF EXISTS ${db}`);
    }
  });
});
