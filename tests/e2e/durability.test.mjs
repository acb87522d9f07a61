// Nothing answered is lost: a graceful shutdown (SIGTERM) under load, and a crash (kill -9)
// under load. Every request carries its own recipient r<N>, so the test knows exactly which
// answered opens must be in the store after the restart.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import http from 'node:http';
import { appendFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import net from 'node:net';

import { GIF_LENGTH, UA, lockStore, run, sleep, startServer } from './harness.mjs';

const cleanup = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

/**
 * Load on PORT from CLIENTS keep-alive connections until STOP() says so or MAX requests went
 * out. Each request asks for recipient `${prefix}${n}`. Resolves {sent, answered} (Sets of
 * recipients; answered = a 200 with the whole GIF arrived).
 */
function load(port, { clients, max, prefix, campaign, stop }) {
  const sent = new Set();
  const answered = new Set();
  let next = 0;
  const one = (agent) => new Promise((resolve) => {
    const r = `${prefix}${next++}`;
    sent.add(r);
    const req = http.get({
      host: '127.0.0.1', port, agent, path: `/spy-pixel.gif?campaign=${campaign}&email=${r}`,
      headers: { 'User-Agent': UA.thunderbird }, timeout: 10000,
    }, (res) => {
      let n = 0;
      res.on('data', (d) => { n += d.length; });
      res.on('end', () => {
        if (res.statusCode === 200 && n === GIF_LENGTH) answered.add(r);
        resolve(true);
      });
      res.on('error', () => resolve(false));
      res.on('aborted', () => resolve(false));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
  });
  const worker = async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let failures = 0;
    try {
      while (next < max && !stop() && failures < 20) {
        if (!(await one(agent))) {
          failures++;
          await sleep(20);
        }
      }
    } finally {
      agent.destroy();
    }
  };
  return Promise.all(Array.from({ length: clients }, worker)).then(() => ({ sent, answered }));
}

async function storedRecipients(s, campaign) {
  await s.indexed();
  const evs = await s.events(campaign, '?limit=100000');
  const set = new Set(evs.map((e) => e.recipient));
  // Each request had its own recipient: a replayed journal must not store one twice.
  assert.equal(set.size, evs.length, `${evs.length - set.size} opens stored twice`);
  return set;
}

function assertAllStored(answered, stored, sent) {
  const missing = [...answered].filter((r) => !stored.has(r));
  assert.deepEqual(missing.slice(0, 20), [], `${missing.length} answered opens are missing from the store`);
  const phantom = [...stored].filter((r) => !sent.has(r));
  assert.deepEqual(phantom.slice(0, 20), [], 'the store holds opens that were never sent');
}

describe('durability', () => {
  test('SIGTERM under load: the process exits 0 and every answered open is stored', async (t) => {
    const s = await startServer({ campaigns: ['load'], keepData: true });
    cleanup.push(() => rm(s.dataDir, { recursive: true, force: true }));
    let stopping = false;
    let exit;
    const t0 = Date.now();
    const done = load(s.port, { clients: 20, max: 4000, prefix: 'g', campaign: 'load', stop: () => Date.now() - t0 > 6000 || (stopping && exit) });
    // Signal once the load runs, while requests are in flight.
    const tick = Date.now();
    while (Date.now() - tick < 3000) {
      await sleep(50);
      if ((await s.metrics().catch(() => ({}))).spypixel_opens_recorded_total >= 500) break;
    }
    stopping = true;
    exit = await s.stop({ keep: true, timeoutMs: 30000 });
    const { sent, answered } = await done;
    assert.equal(exit.signal, null, `killed by ${exit.signal}: ${s.logs().slice(-2000)}`);
    assert.equal(exit.code, 0, s.logs().slice(-2000));
    assert.ok(answered.size >= 100, `only ${answered.size} opens answered`);

    const s2 = await startServer({ dataDir: s.dataDir, token: s.token, keepData: true });
    cleanup.push(() => s2.stop({ keep: true }));
    const stored = await storedRecipients(s2, 'load');
    t.diagnostic(`sent ${sent.size}, answered ${answered.size}, stored ${stored.size}`);
    assertAllStored(answered, stored, sent);
    const c = await s2.campaign('load');
    assert.equal(c.total_views, stored.size, 'the counters agree with the events');
    assert.equal(c.unique_views, stored.size);
  });

  for (const [label, flags] of [['', []], [' with --sync-full', ['--sync-full']], [' with --answer-after store', ['--answer-after', 'store']]]) {
    test(`kill -9 under load (50 keep-alive clients)${label}: every answered open is stored after the restart`, async (t) => {
      const s = await startServer({ campaigns: ['crash'], keepData: true, flags });
      cleanup.push(() => rm(s.dataDir, { recursive: true, force: true }));
      let killed = false;
      const t0 = Date.now();
      const done = load(s.port, { clients: 50, max: 3000, prefix: 'k', campaign: 'crash', stop: () => killed || Date.now() - t0 > 8000 });
      const tick = Date.now();
      while (Date.now() - tick < 3000) {
        await sleep(25);
        if ((await s.metrics().catch(() => ({}))).spypixel_opens_journaled_total >= 1000) break;
      }
      const exit = await s.kill9();
      killed = true;
      assert.equal(exit.signal, 'SIGKILL');
      const { sent, answered } = await done;
      assert.ok(answered.size >= 100, `only ${answered.size} opens answered before the kill`);

      const s2 = await startServer({ dataDir: s.dataDir, token: s.token, keepData: true, flags });
      cleanup.push(() => s2.stop({ keep: true }));
      const stored = await storedRecipients(s2, 'crash');
      t.diagnostic(`sent ${sent.size}, answered ${answered.size}, stored ${stored.size}`);
      assertAllStored(answered, stored, sent);
      assert.ok(stored.size >= answered.size);
      const c = await s2.campaign('crash');
      assert.equal(c.total_views, stored.size, 'the counters agree with the events after the crash');
      // The restarted server records again.
      const r = await s2.pixel({ campaign: 'crash', email: 'after-restart' }, { 'User-Agent': UA.thunderbird });
      assert.equal(r.status, 200);
      assert.ok((await storedRecipients(s2, 'crash')).has('after-restart'));
      await s2.stop({ keep: true });
    });
  }

  test('a torn journal record (a crash mid-append) is dropped, and the rest is indexed', async () => {
    const s = await startServer({ campaigns: ['torn'], keepData: true });
    cleanup.push(() => rm(s.dataDir, { recursive: true, force: true }));
    for (const w of ['t1', 't2']) assert.equal((await s.pixel({ campaign: 'torn', email: w }, { 'User-Agent': UA.thunderbird })).status, 200);
    await s.indexed();
    await s.stop({ keep: true });
    // What a process killed inside pwrite(2) leaves: the start of a record, no end.
    const dir = join(s.dataDir, 'journal');
    const seg = (await readdir(dir)).filter((f) => f.endsWith('.jnl')).sort().pop();
    await appendFile(join(dir, seg), Buffer.from([0x53, 0x50, 0x4a, 0x31, 0x40, 0, 0, 0, 1, 2, 3]));
    const s2 = await startServer({ dataDir: s.dataDir, token: s.token, keepData: true });
    cleanup.push(() => s2.stop({ keep: true }));
    assert.equal((await s2.pixel({ campaign: 'torn', email: 't3' }, { 'User-Agent': UA.thunderbird })).status, 200);
    const stored = await storedRecipients(s2, 'torn');
    assert.deepEqual([...stored].sort(), ['t1', 't2', 't3']);
    await s2.stop({ keep: true });
  });

  test('while another program holds the store, opens are still answered at once; reads say how far behind they are', async () => {
    // One request thread: a read that blocked it would hold up the opens too.
    const s = await startServer({ campaigns: ['held'], flags: ['--threads', '1'] });
    cleanup.push(() => s.stop());
    assert.equal((await s.pixel({ campaign: 'held', email: 'before' }, { 'User-Agent': UA.thunderbird })).status, 200);
    assert.equal((await s.events('held')).length, 1);
    const lock = await lockStore(s.dataDir);
    let released = false;
    try {
      const t0 = Date.now();
      for (const w of ['held1', 'held2', 'held3']) {
        const r = await s.pixel({ campaign: 'held', email: w }, { 'User-Agent': UA.thunderbird });
        assert.equal(r.status, 200);
        assert.equal(r.body.length, GIF_LENGTH);
      }
      assert.ok(Date.now() - t0 < 2000, `answers took ${Date.now() - t0} ms with the store locked`);
      const health = (await s.req('/healthz')).json();
      assert.ok(health.index_backlog_bytes > 0, JSON.stringify(health));
      // A read waits a little for the index, then answers with what the store has; each
      // on a new connection, so that every request thread (and its first store
      // connection, which must not need the write lock) serves one.
      for (let i = 0; i < 3; i++) {
        const r = await s.api('GET', '/campaigns/held/events');
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.json().map((e) => e.recipient), ['before']);
        assert.ok(Number(r.headers['x-index-backlog-bytes']) > 0, `X-Index-Backlog-Bytes: ${r.headers['x-index-backlog-bytes']}`);
      }
      // The read waits parked, not on the request thread: an open sent while it waits is
      // answered before it.
      const tRead = Date.now();
      const reading = s.api('GET', '/campaigns/held/events').then((r) => ({ r, ms: Date.now() - tRead }));
      await sleep(100);
      const tOpen = Date.now();
      assert.equal((await s.pixel({ campaign: 'held', email: 'held4' }, { 'User-Agent': UA.thunderbird })).status, 200);
      const openMs = Date.now() - tOpen;
      const { r: slow, ms: readMs } = await reading;
      assert.equal(slow.status, 200);
      assert.ok(readMs >= 800, `the read waited ${readMs} ms for the index`);
      assert.ok(openMs < 500, `an open took ${openMs} ms while a read waited`);
      await lock.release();
      released = true;
      await s.indexed(20000);
      const after = await s.api('GET', '/campaigns/held/events');
      assert.equal(after.headers['x-index-backlog-bytes'], undefined);
      assert.deepEqual(after.json().map((e) => e.recipient).sort(), ['before', 'held1', 'held2', 'held3', 'held4']);
    } finally {
      if (!released) await lock.release();
    }
  });

  test('an erasure waits for the opens answered before it, however far behind the store is', async () => {
    const s = await startServer({ campaigns: ['era'] });
    cleanup.push(() => s.stop());
    const ua = { 'User-Agent': UA.thunderbird };
    assert.equal((await s.pixel({ campaign: 'era', email: 'gone@example.com' }, ua)).status, 200);
    assert.equal((await s.pixel({ campaign: 'era', email: 'stays@example.com' }, ua)).status, 200);
    await s.indexed();
    const lock = await lockStore(s.dataDir);
    let released = false;
    try {
      for (let i = 0; i < 2; i++) assert.equal((await s.pixel({ campaign: 'era', email: 'gone@example.com' }, ua)).status, 200);
      const t0 = Date.now();
      const erasing = s.api('DELETE', '/recipients/gone%40example.com');
      await sleep(1500); // longer than a read would wait
      await lock.release();
      released = true;
      const r = await erasing;
      assert.equal(r.status, 200, r.text);
      assert.ok(Date.now() - t0 >= 1400, 'the erasure waited for the store');
      assert.equal(r.json().deleted_events, 3, 'the two opens answered while the store was held are erased too');
    } finally {
      if (!released) await lock.release();
    }
    await s.indexed();
    const left = (await s.events('era')).map((e) => e.recipient);
    assert.deepEqual(left, ['stays@example.com']);
    const c = await s.campaign('era');
    assert.equal(c.total_views, 1);
  });

  test('a second server on the same data folder is refused: the journal is locked', async () => {
    const s = await startServer({ campaigns: ['lock'] });
    cleanup.push(() => s.stop());
    const r = await run(['serve', '--listen', '127.0.0.1:0', '--data', s.dataDir, '--no-geoip'], { timeoutMs: 10000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /in use by another spypixel/);
  });

  test('SIGTERM with a live stream, a half-sent request and an idle connection open: exits 0 within 10 s', async () => {
    const s = await startServer({ campaigns: ['idle'] });
    const stream = http.get(`${s.base}/api/v1/campaigns/idle/stream`, { headers: { Authorization: `Bearer ${s.token}` }, agent: false }, (res) => {
      res.on('data', () => {});
      res.on('error', () => {});
    });
    stream.on('error', () => {});
    const half = net.connect(s.port, '127.0.0.1');
    half.on('error', () => {});
    half.write('GET /spy-pixel.gif?campaign=idle&email=half HTTP/1.1\r\nHost: a\r\n');
    const idle = net.connect(s.port, '127.0.0.1');
    idle.on('error', () => {});
    await sleep(300);
    try {
      const t0 = Date.now();
      const exit = await s.stop({ timeoutMs: 10000 });
      assert.equal(exit.signal, null, 'had to be killed: it did not stop within 10 s');
      assert.equal(exit.code, 0);
      assert.ok(Date.now() - t0 < 10000);
    } finally {
      stream.destroy();
      half.destroy();
      idle.destroy();
    }
  });
});
