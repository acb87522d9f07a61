// postgres: two real servers share one PostgreSQL store (started by scripts/pg-test-server
// through scripts/run-tests): opens recorded by either are counted once, tokens made by one
// are good on the other, and an answered open survives kill -9: from the server's journal
// once it restarts, or at once with --answer-after store.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { UA, assertPixel, parseCsv, request, startServer, waitFor } from './harness.mjs';

const PG = process.env.SPYPIXEL_TEST_PG;

function psql(conninfo, sql) {
  return new Promise((resolve, reject) => {
    execFile('psql', [conninfo, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql], { timeout: 20000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`psql: ${err.message}\n${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

/** The ids of a CSV export's rows (RFC 4180: quoted fields with "", commas and newlines inside). */
function csvIds(text) {
  const rows = parseCsv(text);
  const id = rows[0].indexOf('id');
  return rows.slice(1).map((r) => Number(r[id]));
}

describe('PostgreSQL store shared by two servers', { skip: !PG && 'SPYPIXEL_TEST_PG is unset (scripts/run-tests sets it)' }, () => {
  const db = `spypixel_e2e_${randomBytes(6).toString('hex')}`;
  const conninfo = PG ? `${PG.replace(/\bdbname=\S+/, '')} dbname=${db}` : '';
  let a;
  let b;

  before(async () => {
    await psql(PG, `CREATE DATABASE ${db}`);
    // Every command of the harness (user, token, campaign, serve) reads these.
    process.env.SPYPIXEL_STORE = 'postgres';
    process.env.SPYPIXEL_PG = conninfo;
    a = await startServer({ campaigns: ['pg-news'] });
    b = await startServer({ campaigns: ['pg-news'] });
  });

  after(async () => {
    await a?.stop();
    await b?.stop();
    delete process.env.SPYPIXEL_STORE;
    delete process.env.SPYPIXEL_PG;
    if (PG) await psql(PG, `DROP DATABASE IF EXISTS ${db}`);
  });

  test('the schema lives in PostgreSQL, not in the data folders', async () => {
    const version = await psql(conninfo, 'SELECT version FROM spypixel_schema');
    assert.ok(Number(version) >= 1, `schema version ${version}`);
  });

  test('opens through either server are counted together', async () => {
    const ua = { 'User-Agent': UA.thunderbird };
    for (const [srv, who] of [[a, 'ann@example.com'], [b, 'bob@example.com'], [b, 'ann@example.com']]) {
      const r = await srv.pixel({ campaign: 'pg-news', email: who }, ua);
      assert.equal(r.status, 200);
      assert.equal(r.body.length, 43);
    }
    // Each server indexes its own journal into the shared store.
    await a.indexed();
    await b.indexed();
    for (const srv of [a, b]) {
      const c = await srv.campaign('pg-news');
      assert.equal(c.total_views, 3);
      assert.equal(c.unique_views, 2);
      const per = Object.fromEntries(c.per_recipient.map((r) => [r.recipient, r.views]));
      assert.deepEqual(per, { 'ann@example.com': 2, 'bob@example.com': 1 });
    }
    const events = await a.events('pg-news');
    assert.equal(events.length, 3);
    assert.ok(events[0].id > events[1].id && events[1].id > events[2].id, 'newest first');
    assert.equal(await psql(conninfo, "SELECT count(*) FROM events WHERE campaign = 'pg-news'"), '3');
  });

  test('an opaque pixel made by one server records on the other (one shared key)', async () => {
    const made = await a.apiOk('POST', '/pixels', { campaign: 'pg-shared', recipient: 'cy@example.com' });
    const path = new URL(made.url).pathname;
    const r = await request(`${b.base}${path}`, { headers: { 'User-Agent': UA.chrome } });
    assert.equal(r.status, 200);
    await b.indexed();
    const c = await a.campaign('pg-shared');
    assert.equal(c.total_views, 1);
    assert.equal(c.per_recipient[0].recipient, 'cy@example.com');
  });

  test('hostile bytes are stored safely', async () => {
    const r = await a.pixel({ campaign: 'pg-news', email: 'q@example.com' },
      { 'User-Agent': "Mozilla/5.0 '); DROP TABLE events; --", 'X-Note': '<script>"x"</script>' });
    assert.equal(r.status, 200);
    await a.indexed();
    const [ev] = await b.events('pg-news', '?limit=1');
    assert.equal(ev.user_agent, "Mozilla/5.0 '); DROP TABLE events; --");
    assert.equal(ev.headers['X-Note'], '<script>"x"</script>');
  });

  test('an answered open survives kill -9 of its server: the restarted server indexes its journal', async () => {
    // Keep the first server's journal from being indexed before the kill: many opens, and
    // the kill right after the last answer.
    const ua = { 'User-Agent': UA.thunderbird };
    const who = [];
    for (let i = 0; i < 200; i++) who.push(`kill${i}@example.com`);
    await Promise.all(who.map(async (w) => assert.equal((await a.pixel({ campaign: 'pg-news', email: w }, ua)).status, 200)));
    const exit = await a.kill9();
    assert.equal(exit.signal, 'SIGKILL');
    a = await startServer({ dataDir: a.dataDir, token: a.token, user: a.user, password: a.password });
    await a.indexed();
    const stored = new Set((await b.events('pg-news')).map((e) => e.recipient));
    const missing = who.filter((w) => !stored.has(w));
    assert.deepEqual(missing, [], 'every answered open is stored');
  });

  test('with --answer-after store, an answered open is in PostgreSQL before its answer: the other server sees it after kill -9', async () => {
    const c = await startServer({ flags: ['--answer-after', 'store'] });
    const ua = { 'User-Agent': UA.thunderbird };
    const who = [];
    for (let i = 0; i < 100; i++) who.push(`strict${i}@example.com`);
    await Promise.all(who.map(async (w) => assert.equal((await c.pixel({ campaign: 'pg-news', email: w }, ua)).status, 200)));
    await c.kill9();
    const stored = new Set((await b.events('pg-news')).map((e) => e.recipient));
    assert.deepEqual(who.filter((w) => !stored.has(w)), [], 'no restart needed');
    await c.stop();
  });

  test('rows waiting in events_default: /healthz and /metrics tell, and a starting writer moves those of a week it can partition', async () => {
    const week = 7 * 86400000;
    const monday = (ts) => Math.floor((ts - 4 * 86400000) / week) * week + 4 * 86400000;
    const old = monday(Date.now()) - 10 * week + 3600000; // no partition: rows go to events_default
    const ahead = Date.now() + 6 * week; // past the weeks partitions are made for: stays there
    const before = Number(await psql(conninfo, 'SELECT count(*) FROM events_default'));
    const ids = (await psql(conninfo, `CREATE TEMP TABLE t AS SELECT * FROM events WHERE campaign = 'pg-news' LIMIT 1;
      UPDATE t SET id = nextval('events_id_seq'), ts = ${old}; INSERT INTO events SELECT * FROM t;
      UPDATE t SET id = nextval('events_id_seq'), ts = ${ahead}; INSERT INTO events SELECT * FROM t;
      SELECT id FROM events_default WHERE ts IN (${old}, ${ahead}) ORDER BY ts`)).split('\n');
    assert.equal(ids.length, 2);
    assert.equal(await psql(conninfo, 'SELECT count(*) FROM events_default'), String(before + 2));

    const c = await startServer();
    try {
      let health;
      const until = Date.now() + 15000;
      do {
        const r = await c.req('/healthz');
        assert.equal(r.status, 200, 'rows in events_default are no reason to send opens elsewhere');
        health = r.json();
        if (health.events_default_rows === before + 1) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      } while (Date.now() < until);
      assert.equal(health.events_default_rows, before + 1, JSON.stringify(health));
      assert.equal(health.status, 'ok');
      assert.deepEqual(health.problems, []);
      assert.equal(health.warnings.length, 1);
      assert.match(health.warnings[0], new RegExp(`^store: ${before + 1} rows wait in events_default`));
      // The old week's row is in that week's partition now; the one four weeks ahead and more stays.
      const d = new Date(monday(old));
      const name = `events_w${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}`;
      assert.equal(await psql(conninfo, `SELECT tableoid::regclass FROM events WHERE id = ${ids[0]}`), name);
      assert.equal(await psql(conninfo, `SELECT tableoid::regclass FROM events WHERE id = ${ids[1]}`), 'events_default');
      const metrics = (await c.req('/metrics')).body.toString();
      assert.match(metrics, new RegExp(`^spypixel_store_events_default_rows ${before + 1}$`, 'm'));
    } finally {
      await c.stop();
    }
  });
  test('events.json and events.csv of a campaign read over several pages and read-ahead statements hold its events once each, in order', async () => {
    await a.apiOk('POST', '/campaigns', { id: 'pg-big' });
    // The export reads pages of 4,000, the next one read ahead: five pages (the test below needs
    // more than the socket holds).
    const n = 16500;
    let next = 0;
    const worker = async () => {
      while (next < n) {
        const i = next++;
        assertPixel(await a.pixel({ campaign: 'pg-big', email: `r${i % 300}@example.com` }, { 'User-Agent': `agent ${i % 11}` }));
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    let all;
    await waitFor(async () => (all = await a.events('pg-big', '?limit=100000')).length === n, { what: `${n} events indexed`, timeoutMs: 60000 });
    for (const srv of [a, b]) {
      const json = await srv.api('GET', '/campaigns/pg-big/events.json');
      assert.equal(json.status, 200);
      assert.deepEqual(json.json(), all);
      const csv = await srv.api('GET', '/campaigns/pg-big/events.csv');
      assert.equal(csv.status, 200);
      assert.deepEqual(csvIds(csv.text), all.map((e) => e.id));
    }
    const part = await b.api('GET', `/campaigns/pg-big/events.json?limit=4100&before=${all[10].id}`);
    assert.deepEqual(part.json(), all.slice(11, 4111));
    const tail = await b.api('GET', `/campaigns/pg-big/events.csv?before=${all[n - 3].id}`);
    assert.deepEqual(csvIds(tail.text), all.slice(n - 2).map((e) => e.id));
  });
  test('an export whose store fails after its first page is cut, never ended as a whole document; between pages it holds no lock on events', async () => {
    // pg-big (the test above): 16,500 events (12.6 MB), pages of 4,000 (3 MB). The download stops
    // at its first bytes: the server reads on as long as the socket takes its pages (a few MB),
    // then waits; the store fails before the pages after those are read.
    const got = await new Promise((resolve, reject) => {
      const req = http.get(`${a.base}/api/v1/campaigns/pg-big/events.json`, { headers: { Authorization: `Bearer ${a.token}` }, agent: false }, (res) => {
        let body = '';
        let paused = false;
        res.setEncoding('utf8');
        res.on('data', (d) => {
          body += d;
          if (paused) return;
          paused = true;
          res.pause();
          // Granted at once: no statement of the export waits on the connection with its locks.
          psql(conninfo, "SET lock_timeout = '5s'; ALTER TABLE events RENAME TO events_away").then(() => res.resume(), reject);
        });
        res.on('error', () => {});
        res.on('close', () => resolve({ status: res.statusCode, body, complete: res.complete }));
      });
      req.on('error', () => {});
    });
    await psql(conninfo, 'ALTER TABLE events_away RENAME TO events');
    assert.equal(got.status, 200);
    assert.equal(got.complete, false, `the answer was cut, not ended: ${got.body.length} bytes, ending ${JSON.stringify(got.body.slice(-40))}`);
    assert.ok(got.body.length > 1000, 'the first page was sent');
    assert.throws(() => JSON.parse(got.body), 'what came is no whole document');
    assert.ok(!got.body.endsWith('\n]'));
    // The store is fine afterwards.
    const again = await b.api('GET', '/campaigns/pg-big/events.json?limit=3');
    assert.equal(again.json().length, 3);
  });
});
