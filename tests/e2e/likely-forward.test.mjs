// Likely forwards: the recipient's pixel loaded later by a new client from another network
// (told apart by User-Agent and X-Forwarded-For through --trusted-proxy), stored as an event of
// kind forward with its rule besides the open, counted apart from the forward CSS's loads.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { UA, assertPixel, sleep, startServer } from './harness.mjs';

const RULE = 'likely-forward:new-client-new-network';
const firefox = 'Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0';

let srv;
before(async () => {
  srv = await startServer({ campaigns: ['fw'], flags: ['--trusted-proxy', '127.0.0.1', '--likely-forward-after', '1'] });
});
after(async () => { await srv?.stop(); });

async function open(email, ua, ip) {
  assertPixel(await srv.pixel({ campaign: 'fw', email }, { 'User-Agent': ua, 'X-Forwarded-For': ip }));
}

test('a new client from another network after the wait is a likely forward, once, and stays an open', async () => {
  await open('ann', UA.thunderbird, '203.0.113.7'); // the first human open: Thunderbird on Windows
  await open('ann', UA.chrome.replace('HeadlessChrome', 'Chrome'), '198.51.100.9'); // too soon
  await srv.indexed();
  await sleep(1200);
  await open('ann', UA.thunderbird, '192.0.2.1'); // the same client elsewhere
  await open('ann', firefox, '203.0.113.99'); // a new client on the same network
  await open('ann', UA.gmail, '66.249.84.1'); // a proxy
  await open('ann', UA.curl, '100.64.1.1'); // a machine
  await open('ann', firefox, '198.51.100.20'); // a new client on another network: the forward
  await open('ann', firefox, '100.64.9.9'); // that client again, elsewhere: no second one
  await srv.indexed();

  const evs = await srv.events('fw');
  const forwards = evs.filter((e) => e.kind === 'forward');
  assert.equal(forwards.length, 1, JSON.stringify(forwards));
  const [f] = forwards;
  assert.equal(f.rule, RULE);
  assert.equal(f.ip, '198.51.100.20');
  assert.equal(f.browser, 'Firefox');
  assert.equal(f.recipient, 'ann');
  assert.equal(f.class, 'human');
  assert.equal(evs.filter((e) => e.kind === 'open').length, 8, 'every open stays an open');
  const byKind = await srv.events('fw', '?kind=forward');
  assert.deepEqual(byKind.map((e) => e.id), [f.id]);

  const c = await srv.campaign('fw');
  assert.equal(c.engagement.likely_forwards, 1);
  assert.equal(c.engagement.forwards, 0);
  assert.equal(c.total_views, 7, 'a likely forward is no view');

  const csv = await srv.req('/api/v1/campaigns/fw/events.csv', { headers: { Authorization: `Bearer ${srv.token}` } });
  assert.equal(csv.status, 200);
  assert.equal(csv.text.split('\n').filter((l) => l.includes(RULE)).length, 1);
});
