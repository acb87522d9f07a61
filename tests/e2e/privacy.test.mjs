// Privacy controls: erasing one recipient (CLI and API) and the retention period.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { UA, assertPixel, run, sqlite, startServer, waitFor } from './harness.mjs';

const human = { 'User-Agent': UA.thunderbird };
const cleanup = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

async function seed(s) {
  // victim: 2 human opens in c1, 1 proxy + 1 machine in c2; others stay.
  const opens = [
    ['c1', 'victim@example.com', human], ['c1', 'victim@example.com', human],
    ['c1', 'keep@example.com', human], ['c1', 'keep2@example.com', human],
    ['c2', 'victim@example.com', { 'User-Agent': UA.gmail }], ['c2', 'victim@example.com', { 'User-Agent': UA.curl }],
    ['c2', 'keep@example.com', human],
  ];
  for (const [campaign, email, h] of opens) assertPixel(await s.pixel({ campaign, email }, h));
  const c1 = await s.campaign('c1');
  const c2 = await s.campaign('c2');
  assert.deepEqual([c1.total_views, c1.unique_views, c2.total_views, c2.unique_views], [4, 3, 2, 2]);
  assert.equal(c2.by_class.machine, 1);
}

async function assertForgotten(s, c1Before, c2Before) {
  for (const id of ['c1', 'c2']) {
    const evs = await s.events(id);
    assert.ok(!evs.some((e) => e.recipient === 'victim@example.com'), `no event of the recipient left in ${id}`);
    assert.ok(evs.some((e) => e.recipient === 'keep@example.com'), `other recipients stay in ${id}`);
    const c = await s.campaign(id);
    assert.ok(!c.per_recipient.some((r) => r.recipient === 'victim@example.com'), `not in per_recipient of ${id}`);
  }
  const c1 = await s.campaign('c1');
  const c2 = await s.campaign('c2');
  assert.equal(c1.total_views, c1Before.total_views - 2);
  assert.equal(c1.unique_views, c1Before.unique_views - 1);
  assert.equal(c1.by_class.human, c1Before.by_class.human - 2);
  assert.equal(c2.total_views, c2Before.total_views - 1);
  assert.equal(c2.unique_views, c2Before.unique_views - 1);
  assert.equal(c2.by_class.proxy, c2Before.by_class.proxy - 1);
  assert.equal(c2.by_class.machine, c2Before.by_class.machine - 1);
  const list = await s.apiOk('GET', '/campaigns');
  assert.equal(list.find((c) => c.id === 'c1').total_views, c1.total_views, 'the list agrees');
}

describe('forget a recipient', () => {
  test('spypixel forget RECIPIENT erases its events in every campaign and fixes the counts', async () => {
    const s = await startServer({ campaigns: ['c1', 'c2'] });
    cleanup.push(() => s.stop());
    await seed(s);
    const c1 = await s.campaign('c1');
    const c2 = await s.campaign('c2');
    const r = await run(['forget', 'victim@example.com', '--data', s.dataDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /a server is running on .*DELETE \/api\/v1\/recipients/s, 'it points at the API, which waits for the journal');
    await assertForgotten(s, c1, c2);
    // New opens of the recipient count again from zero.
    assertPixel(await s.pixel({ campaign: 'c1', email: 'victim@example.com' }, human));
    const after1 = await s.campaign('c1');
    assert.equal(after1.unique_views, c1.unique_views);
    assert.equal(after1.per_recipient.find((x) => x.recipient === 'victim@example.com').views, 1);
  });

  test('DELETE /api/v1/recipients/ADDR does the same', async () => {
    const s = await startServer({ campaigns: ['c1', 'c2'] });
    cleanup.push(() => s.stop());
    await seed(s);
    const c1 = await s.campaign('c1');
    const c2 = await s.campaign('c2');
    const r = await s.api('DELETE', `/recipients/${encodeURIComponent('victim@example.com')}`);
    assert.equal(r.status, 200, r.text);
    await assertForgotten(s, c1, c2);
    const again = await s.api('DELETE', '/recipients/victim@example.com');
    assert.equal(again.status, 200, 'forgetting twice is fine');
    assert.equal((await s.campaign('c1')).total_views, c1.total_views - 2, 'and changes nothing more');
    const bad = await s.api('DELETE', '/recipients/%3Cscript%3E');
    assert.equal(bad.status, 400);
  });

  test('forget with a bad recipient ID exits non-zero', async () => {
    const dir = (await startServer({ campaigns: ['c1'] })); // a data folder to point at
    cleanup.push(() => dir.stop());
    for (const args of [['forget', '<script>'], ['forget'], ['forget', 'a', 'b'], ['forget', '']]) {
      const r = await run([...args, '--data', dir.dataDir]);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.ok(r.stderr.length > 0, 'says why');
    }
  });
});

// Makes the events WHERE selects DAYS older in the SQLite store at DB, as the writer would have
// stored them: each in its campaign's quarter hour's range of IDs (events_quarters), which is
// how retention finds a campaign's old events (docs/ARCHITECTURE.md).
async function ageEvents(db, where, days) {
  await sqlite(db, `UPDATE events SET ts = ts - ${days} * 86400000 WHERE ${where};
    INSERT INTO events_quarters(campaign, quarter, first_id, last_id)
      SELECT campaign, ts / 900000, MIN(id), MAX(id) FROM events WHERE ${where} GROUP BY 1, 2
      ON CONFLICT DO UPDATE SET first_id = MIN(first_id, excluded.first_id),
        last_id = MAX(last_id, excluded.last_id);`);
}

describe('retention', () => {
  test('--retention 1 deletes events older than a day and keeps the counts', async () => {
    const s = await startServer({ campaigns: ['ret'], keepData: true });
    cleanup.push(() => rm(s.dataDir, { recursive: true, force: true }));
    for (const email of ['old1', 'old2', 'old3', 'new1']) assertPixel(await s.pixel({ campaign: 'ret', email }, human));
    const before = await s.campaign('ret');
    assert.equal(before.total_views, 4);
    assert.equal((await s.stop()).code, 0);

    const db = path.join(s.dataDir, 'spypixel.db');
    await ageEvents(db, "recipient LIKE 'old%'", 2);
    assert.equal((await sqlite(db, "SELECT count(*) FROM events WHERE recipient LIKE 'old%';")).trim(), '3');

    const s2 = await startServer({ dataDir: s.dataDir, token: s.token, flags: ['--retention', '1'], keepData: true });
    cleanup.push(() => s2.stop({ keep: true }));
    const left = await waitFor(async () => {
      const evs = await s2.events('ret');
      return evs.length === 1 ? evs : null;
    }, { timeoutMs: 15000, what: 'old events to be deleted' });
    assert.equal(left[0].recipient, 'new1');
    const c = await s2.campaign('ret');
    assert.equal(c.total_views, before.total_views, 'total_views unchanged');
    assert.equal(c.unique_views, before.unique_views, 'unique_views unchanged');
    const m = await s2.metrics();
    assert.equal(m.spypixel_retention_deleted_total, 3);
    // A fresh open is kept.
    assertPixel(await s2.pixel({ campaign: 'ret', email: 'new2' }, human));
    assert.equal((await s2.events('ret')).length, 2);
  });

  test('without --retention nothing old is deleted', async () => {
    const s = await startServer({ campaigns: ['ret'], keepData: true });
    cleanup.push(() => rm(s.dataDir, { recursive: true, force: true }));
    assertPixel(await s.pixel({ campaign: 'ret', email: 'ancient' }, human));
    await s.stop();
    await ageEvents(path.join(s.dataDir, 'spypixel.db'), 'true', 400);
    const s2 = await startServer({ dataDir: s.dataDir, token: s.token, keepData: true });
    cleanup.push(() => s2.stop({ keep: true }));
    assert.equal((await s2.events('ret')).length, 1);
  });
});
