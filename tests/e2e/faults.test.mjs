// faults: nothing lost silently. A full disk, a missing, foreign or damaged store, a WAL
// index or a journal file made unwritable under the running server: every open is answered,
// kept (in memory while the journal cannot be written), and stored once the fault is gone;
// /healthz says 503 with the reason meanwhile; the server never dies of it, and never starts
// on a store that is not its own without being told to.
// These tests mount small tmpfs file systems and use chattr +i: they need root (CI runs as
// root), and each says why it skips where that is not allowed.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, open, readdir, readFile, rename, rm, stat, statfs, truncate, unlink } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { prepareData, run, sleep, startServer, tempDir, waitFor } from './harness.mjs';

function sh(cmd, args) {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 20000 }, (err, stdout, stderr) => resolve({ ok: !err, out: `${stdout}${stderr}` }));
  });
}

const cleanup = [];
after(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => {});
});

/** Mounts a tmpfs of SIZE at a new folder; its path, or null (the test skips) where mounting is not allowed. */
async function mountTmpfs(t, size) {
  const dir = await tempDir('spypixel-tmpfs-');
  const r = await sh('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  if (!r.ok) {
    await rm(dir, { recursive: true, force: true });
    t.skip(`cannot mount a tmpfs (${r.out.trim()}): these tests run as root`);
    return null;
  }
  cleanup.push(async () => {
    await sh('umount', ['-l', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** chattr +i PATH (undone at the end); false (the test skips) where the file system has no such flag. */
async function makeImmutable(t, file) {
  const r = await sh('chattr', ['+i', file]);
  if (!r.ok) {
    t.skip(`cannot make ${path.basename(file)} immutable (${r.out.trim()})`);
    return false;
  }
  cleanup.push(() => sh('chattr', ['-i', file]));
  return true;
}

/** Fills the file system of DIR to its last byte with DIR/filler. */
async function fillDisk(dir) {
  await sh('dd', ['if=/dev/zero', `of=${path.join(dir, 'filler')}`, 'bs=1M']);
  const fh = await open(path.join(dir, 'filler'), 'a');
  const small = Buffer.alloc(4096);
  try {
    for (;;) await fh.write(small);
  } catch { /* full */ } finally {
    await fh.close();
  }
}

async function health(s) {
  const r = await s.req('/healthz');
  return { status: r.status, body: r.json() };
}

async function sendPixels(s, campaign, prefix, n, headers = {}) {
  let answered = 0;
  for (let i = 0; i < n; i += 25) {
    const rs = await Promise.all(Array.from({ length: Math.min(25, n - i) }, (_, k) => s.pixel({ campaign, email: `${prefix}${i + k}@example.com` }, headers)));
    for (const r of rs) if (r.status === 200 && r.body.length === 43) answered++;
  }
  return answered;
}

async function stored(s, campaign) {
  return (await s.events(campaign)).length;
}

async function sha(file) {
  try {
    return createHash('sha256').update(await readFile(file)).digest('hex');
  } catch {
    return 'absent';
  }
}

describe('a full disk', () => {
  test('every open is answered and held in memory while the journal cannot be written; all are stored once space returns; /healthz says 503 meanwhile', async (t) => {
    const mnt = await mountTmpfs(t, '64m');
    if (!mnt) return;
    const s = await startServer({ dataDir: path.join(mnt, 'data'), campaigns: ['full'], keepData: true });
    cleanup.push(() => s.stop());
    await fillDisk(mnt);
    // Records of about 4 KB (a header is kept up to 4 KiB): the journal's allocated step
    // (2 MiB) is used up after about 490 of them, and the rest meet the full disk.
    const pad = { 'X-Pad': 'p'.repeat(4000) };
    const n = 600;
    assert.equal(await sendPixels(s, 'full', 'f', n, pad), n, 'every pixel answered with the GIF');
    const h = await health(s);
    assert.equal(h.status, 503, JSON.stringify(h.body));
    assert.equal(h.body.status, 'degraded');
    assert.ok(h.body.problems.some((p) => /^journal: cannot be written \(No space left on device\)/.test(p)), JSON.stringify(h.body.problems));
    assert.ok(h.body.journal.held > 0, JSON.stringify(h.body));
    const m = await s.metrics();
    assert.equal(m.spypixel_journal_degraded, 1);
    assert.equal(m.spypixel_journal_held_records, h.body.journal.held);
    assert.ok(m.spypixel_journal_held_bytes > 0);
    assert.equal(m.spypixel_journal_dropped_total, 0);
    assert.equal(m.spypixel_opens_failed_total, 0);
    // Logged by the journal's spill thread once it wakes, which may be after the answers.
    await waitFor(() => /the journal cannot be written: opens are held in memory/.test(s.logs()), { timeoutMs: 10000, what: 'the journal\'s log line' });

    await unlink(path.join(mnt, 'filler'));
    await waitFor(async () => (await health(s)).status === 200, { timeoutMs: 20000, what: '/healthz to answer 200 again' });
    await s.indexed(20000);
    assert.equal(await stored(s, 'full'), n, 'every answered open stored');
    const after = await s.metrics();
    assert.equal(after.spypixel_journal_degraded, 0);
    assert.ok(after.spypixel_journal_spilled_total > 0);
    assert.match(s.logs(), /the journal takes records again/);
    assert.equal((await s.stop()).code, 0);
  });

  for (const flags of [['--sync-full'], ['--answer-after', 'store']]) {
    test(`with ${flags.join(' ')}, whose answers wait for a durable record, a full disk still answers every pixel, and all are stored once space returns`, async (t) => {
      const mnt = await mountTmpfs(t, '64m');
      if (!mnt) return;
      const s = await startServer({ dataDir: path.join(mnt, 'data'), campaigns: ['wait'], keepData: true, flags });
      cleanup.push(() => s.stop());
      await fillDisk(mnt);
      // Held in memory: answered at once. Written to the journal but not to the store (its
      // disk is full too): with --answer-after store, answered once the store has stalled
      // (10 s of failed commits), not never.
      const t0 = Date.now();
      assert.equal(await sendPixels(s, 'wait', 'w', 600, { 'X-Pad': 'p'.repeat(4000) }), 600);
      assert.ok(Date.now() - t0 < 60000, `answered in ${Date.now() - t0} ms`);
      const h = await health(s);
      assert.equal(h.status, 503);
      assert.ok(h.body.journal.held > 0, JSON.stringify(h.body));
      await unlink(path.join(mnt, 'filler'));
      await waitFor(async () => (await health(s)).status === 200, { timeoutMs: 20000, what: '/healthz to answer 200 again' });
      await s.indexed(20000);
      assert.equal(await stored(s, 'wait'), 600);
      assert.equal((await s.stop()).code, 0);
    });
  }

  test('the journal takes its disk a step at a time: starting leaves a small disk nearly free, and one with 10 MiB left takes and stores opens', async (t) => {
    const mnt = await mountTmpfs(t, '80m');
    if (!mnt) return;
    const s = await startServer({ dataDir: path.join(mnt, 'data'), campaigns: ['steps'], keepData: true });
    cleanup.push(() => s.stop());
    const fs0 = await statfs(mnt);
    const free = fs0.bavail * fs0.bsize;
    assert.ok(free > 70 * 1048576, `${(free / 1048576).toFixed(1)} MiB free after the start (a whole 64 MiB segment was allocated at once before)`);
    await sh('dd', ['if=/dev/zero', `of=${path.join(mnt, 'filler')}`, 'bs=1M', `count=${Math.floor(free / 1048576) - 10}`]);
    assert.equal(await sendPixels(s, 'steps', 's', 300), 300);
    await s.indexed(20000);
    assert.equal(await stored(s, 'steps'), 300);
    assert.equal((await health(s)).status, 200);
    assert.equal((await s.stop()).code, 0);
  });
});

describe('the store is the data folder\'s own', () => {
  /** Starts `serve` on DIR expecting a refusal; resolves {code, stderr}. */
  async function refusedStart(dir, flags = []) {
    const r = await run(['serve', '--listen', '127.0.0.1:0', '--data', dir, '--no-geoip', ...flags], { timeoutMs: 15000 });
    assert.notEqual(r.code, 0, `the server started: ${r.stderr}`);
    assert.match(r.stderr, /refusing to start/);
    assert.match(r.stderr, /--adopt-store/);
    assert.match(r.stderr, /move the data folder aside/);
    return r;
  }

  test('a deleted spypixel.db is not replaced by a new, empty store; the backup put back starts, with its tokens and links', async () => {
    const s = await startServer({ campaigns: ['keep'], keepData: true });
    cleanup.push(() => rm(s.dataDir, { recursive: true, force: true }));
    const made = await s.apiOk('POST', '/links', { campaign: 'keep', recipient: 'ann@example.com', target: 'https://example.com/' });
    const link = new URL(made.url).pathname;
    assert.equal(await sendPixels(s, 'keep', 'k', 10), 10);
    await s.indexed();
    assert.equal((await s.stop()).code, 0);
    const db = path.join(s.dataDir, 'spypixel.db');
    await copyFile(db, `${db}.backup`);
    await unlink(db);

    const r = await refusedStart(s.dataDir);
    assert.match(r.stderr, /spypixel\.db does not exist, but the journal beside it was indexed into store [0-9a-f]{32}/);
    await assert.rejects(stat(db), 'no new store was made');

    await rename(`${db}.backup`, db);
    const s2 = await startServer({ dataDir: s.dataDir, token: s.token, keepData: true });
    cleanup.push(() => s2.stop({ keep: true }));
    assert.equal((await s2.api('GET', '/campaigns')).status, 200, 'the API token works');
    const click = await s2.req(link);
    assert.equal(click.status, 302, 'a link sent before still redirects');
    assert.equal(await stored(s2, 'keep'), 11, 'the ten opens and the click');
    assert.equal((await s2.stop({ keep: true })).code, 0);

    // On purpose: a new store, and what the journal holds is indexed into it.
    await unlink(db);
    const s3 = await startServer({ dataDir: s.dataDir, token: s.token, keepData: true, flags: ['--adopt-store'] });
    cleanup.push(() => s3.stop({ keep: true }));
    assert.match(s3.logs(), /adopting the store \(--adopt-store\)/);
    assert.match(s3.logs(), /a new store: its signing secret was made now/);
    assert.equal((await s3.api('GET', '/campaigns')).status, 401, 'a new store, new secret: the old token is gone');
    assert.equal((await s3.stop({ keep: true })).code, 0);
    // Adopted: the next start needs no flag.
    const s4 = await startServer({ dataDir: s.dataDir, token: s.token, keepData: true });
    cleanup.push(() => s4.stop({ keep: true }));
    assert.equal((await s4.stop({ keep: true })).code, 0);
  });

  test('another store\'s file in its place is refused', async () => {
    const a = await startServer({ campaigns: ['a'], keepData: true });
    cleanup.push(() => rm(a.dataDir, { recursive: true, force: true }));
    assert.equal(await sendPixels(a, 'a', 'a', 3), 3);
    await a.indexed();
    await a.stop({ keep: true });
    const b = await startServer({ campaigns: ['b'], keepData: true });
    cleanup.push(() => rm(b.dataDir, { recursive: true, force: true }));
    await b.stop({ keep: true });
    await copyFile(path.join(b.dataDir, 'spypixel.db'), path.join(a.dataDir, 'spypixel.db'));
    const r = await refusedStart(a.dataDir);
    assert.match(r.stderr, /the journal was indexed into store ([0-9a-f]{32}), but \S+spypixel\.db is ([0-9a-f]{32})/);
    const [, want, got] = /indexed into store ([0-9a-f]{32}), but \S+ is ([0-9a-f]{32})/.exec(r.stderr);
    assert.notEqual(want, got);
  });

  test('a store that lacks opens the journal has released since (an older backup) is refused', async () => {
    const s = await startServer({ campaigns: ['old'], keepData: true });
    cleanup.push(() => rm(s.dataDir, { recursive: true, force: true }));
    assert.equal(await sendPixels(s, 'old', 'o', 5), 5);
    await s.indexed();
    await s.stop({ keep: true });
    // What a journal that went on for a while after the backup looks like: its segments
    // start past the position the store holds.
    const jdir = path.join(s.dataDir, 'journal');
    const seg = (await readdir(jdir)).find((f) => f.endsWith('.jnl'));
    const later = path.join(jdir, `${(0x40000000).toString(16).padStart(16, '0')}.jnl`);
    await rename(path.join(jdir, seg), later);
    await truncate(later, 0);
    const r = await refusedStart(s.dataDir);
    assert.match(r.stderr, /holds the journal up to position \d+, but the journal starts at 1073741824/);
    const s2 = await startServer({ dataDir: s.dataDir, token: s.token, keepData: true, flags: ['--adopt-store'] });
    cleanup.push(() => s2.stop({ keep: true }));
    assert.equal(await stored(s2, 'old'), 5);
    assert.equal((await s2.stop({ keep: true })).code, 0);
  });
});

describe('a damaged store', () => {
  test('is found at start and not written into; a backup put back is filled from the journal', async () => {
    const s = await startServer({ campaigns: ['dmg'], keepData: true });
    cleanup.push(() => rm(s.dataDir, { recursive: true, force: true }));
    assert.equal(await sendPixels(s, 'dmg', 'd', 1500), 1500);
    await s.indexed(20000);
    assert.equal((await s.stop({ keep: true })).code, 0);
    const db = path.join(s.dataDir, 'spypixel.db');
    await copyFile(db, `${db}.backup`);
    // 8 KiB of garbage at the start of three pages, a quarter, half and three quarters in: a
    // page's header garbled is found whatever the page holds, where garbage in a page's free
    // space (an empty index's leaf) is not damage that quick_check can see.
    const size = (await stat(db)).size;
    const fh = await open(db, 'r+');
    const header = Buffer.alloc(18);
    await fh.read(header, 0, 18, 0);
    const pageSize = header.readUInt16BE(16) === 1 ? 65536 : header.readUInt16BE(16);
    const pages = Math.floor(size / pageSize);
    for (const at of [pages / 4, pages / 2, (3 * pages) / 4]) {
      await fh.write(randomBytes(8192), 0, 8192, Math.floor(at) * pageSize);
    }
    await fh.close();

    const s2 = await startServer({ dataDir: s.dataDir, token: s.token, keepData: true, degraded: true });
    cleanup.push(() => s2.stop({ keep: true }));
    const h = await waitFor(async () => {
      const x = await health(s2);
      return x.status === 503 ? x : null;
    }, { timeoutMs: 15000, what: '/healthz to report the damage' });
    assert.ok(h.body.problems.some((p) => /^store: the store is damaged: quick_check found: /.test(p)), JSON.stringify(h.body.problems));
    const before = [await sha(db), await sha(`${db}-wal`)];
    assert.equal(await sendPixels(s2, 'dmg', 'n', 20), 20, 'opens still answered');
    await sleep(1500);
    assert.deepEqual([await sha(db), await sha(`${db}-wal`)], before, 'nothing written into the damaged store');
    assert.ok((await health(s2)).body.index_backlog_bytes > 0, 'the new opens wait in the journal');
    assert.equal((await s2.metrics()).spypixel_store_faulted, 1);
    assert.match(s2.logs(), /the store cannot be written: indexing stops/);
    assert.equal((await s2.stop({ keep: true })).code, 0);
    assert.deepEqual([await sha(db), await sha(`${db}-wal`)], before, 'nor at shutdown');

    // The recovery of docs/RECOVERY.md: the damaged files aside, the backup in place.
    for (const f of ['spypixel.db', 'spypixel.db-wal', 'spypixel.db-shm']) await rename(path.join(s.dataDir, f), path.join(s.dataDir, `${f}.damaged`)).catch(() => {});
    await rename(`${db}.backup`, db);
    const s3 = await startServer({ dataDir: s.dataDir, token: s.token, keepData: true });
    cleanup.push(() => s3.stop({ keep: true }));
    await s3.indexed(20000);
    assert.equal(await stored(s3, 'dmg'), 1520, 'the backup holds the old opens, the journal gave it the new ones');
    assert.equal((await s3.stop({ keep: true })).code, 0);
  });
});

describe('files made unwritable under the running server', () => {
  for (const how of ['cut short', 'made immutable']) {
    test(`the WAL index (spypixel.db-shm) ${how}: the process lives on, indexing stops with a 503, and a restart stores every open`, async (t) => {
      const s = await startServer({ campaigns: ['shm'], keepData: true });
      cleanup.push(() => rm(s.dataDir, { recursive: true, force: true }));
      cleanup.push(() => s.stop({ keep: true }));
      assert.equal(await sendPixels(s, 'shm', 'a', 20), 20);
      await s.indexed();
      const shm = path.join(s.dataDir, 'spypixel.db-shm');
      if (how === 'cut short') await truncate(shm, 0);
      else if (!(await makeImmutable(t, shm))) return;
      assert.equal(await sendPixels(s, 'shm', 'b', 30), 30);
      const h = await waitFor(async () => {
        const x = await health(s);
        return x.status === 503 ? x : null;
      }, { timeoutMs: 10000, what: '/healthz to report the fault' });
      assert.ok(h.body.problems.some((p) => /^store: .*(WAL index \(spypixel\.db-shm\) faulted|cannot be written)/.test(p)), JSON.stringify(h.body.problems));
      assert.equal(s.exited(), null, 'the server is still running');
      assert.equal((await s.stop({ keep: true })).code, 0);
      await sh('chattr', ['-i', shm]);
      const s2 = await startServer({ dataDir: s.dataDir, token: s.token, keepData: true });
      cleanup.push(() => s2.stop({ keep: true }));
      await s2.indexed(20000);
      assert.equal(await stored(s2, 'shm'), 50);
      assert.equal((await s2.stop({ keep: true })).code, 0);
    });
  }

  test('the store\'s WAL made immutable: indexing stops with a 503, the journal keeps the opens, a restart stores them', async (t) => {
    const s = await startServer({ campaigns: ['wal'], keepData: true });
    cleanup.push(() => rm(s.dataDir, { recursive: true, force: true }));
    cleanup.push(() => s.stop({ keep: true }));
    assert.equal(await sendPixels(s, 'wal', 'a', 5), 5);
    await s.indexed();
    const wal = path.join(s.dataDir, 'spypixel.db-wal');
    if (!(await makeImmutable(t, wal))) return;
    assert.equal(await sendPixels(s, 'wal', 'b', 20), 20);
    const h = await waitFor(async () => {
      const x = await health(s);
      return x.status === 503 ? x : null;
    }, { timeoutMs: 10000, what: '/healthz to report the fault' });
    assert.ok(h.body.problems.some((p) => /^store: the store's files cannot be written/.test(p)), JSON.stringify(h.body.problems));
    assert.equal((await s.stop({ keep: true })).code, 0);
    await sh('chattr', ['-i', wal]);
    const s2 = await startServer({ dataDir: s.dataDir, token: s.token, keepData: true });
    cleanup.push(() => s2.stop({ keep: true }));
    await s2.indexed(20000);
    assert.equal(await stored(s2, 'wal'), 25);
    assert.equal((await s2.stop({ keep: true })).code, 0);
  });

  test('the journal\'s segment made immutable: the journal goes on in a new one, nothing is lost', async (t) => {
    const s = await startServer({ campaigns: ['jnl'], keepData: true });
    cleanup.push(() => rm(s.dataDir, { recursive: true, force: true }));
    cleanup.push(() => s.stop({ keep: true }));
    assert.equal(await sendPixels(s, 'jnl', 'a', 5), 5);
    const jdir = path.join(s.dataDir, 'journal');
    const seg = (await readdir(jdir)).find((f) => f.endsWith('.jnl'));
    if (!(await makeImmutable(t, path.join(jdir, seg)))) return;
    // 6 KB records: past the pages of the segment already written, into ones the kernel
    // refuses (SIGBUS on the copy, EPERM on the write).
    assert.equal(await sendPixels(s, 'jnl', 'b', 40, { 'X-Pad': 'p'.repeat(6000) }), 40);
    await s.indexed(20000);
    assert.equal(await stored(s, 'jnl'), 45);
    assert.ok((await readdir(jdir)).filter((f) => f.endsWith('.jnl')).length >= 2, 'a new segment');
    assert.match(s.logs(), /the journal cannot be written: opens are held in memory[^\n]*Operation not permitted/);
    assert.match(s.logs(), /the journal takes records again/);
    assert.equal((await health(s)).status, 200);
    assert.equal((await s.stop({ keep: true })).code, 0);
  });
});

const PG = process.env.SPYPIXEL_TEST_PG;

function psql(conninfo, sql) {
  return new Promise((resolve, reject) => {
    execFile('psql', [conninfo, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql], { timeout: 20000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`psql: ${err.message}\n${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

describe('PostgreSQL: the store is the data folder\'s own', { skip: !PG && 'SPYPIXEL_TEST_PG is unset (scripts/run-tests sets it)' }, () => {
  test('a data folder whose journal was indexed into a database now emptied is refused', async () => {
    const db = `spypixel_e2e_${randomBytes(6).toString('hex')}`;
    const conninfo = `${PG.replace(/\bdbname=\S+/, '')} dbname=${db}`;
    const env = { SPYPIXEL_STORE: 'postgres', SPYPIXEL_PG: conninfo };
    await psql(PG, `CREATE DATABASE ${db}`);
    cleanup.push(() => psql(PG, `DROP DATABASE IF EXISTS ${db}`));
    const dir = await tempDir();
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    process.env.SPYPIXEL_STORE = 'postgres';
    process.env.SPYPIXEL_PG = conninfo;
    try {
      await prepareData({ dataDir: dir, campaigns: ['pg'] });
      const s = await startServer({ dataDir: dir, token: 'unused', keepData: true });
      assert.equal(await sendPixels(s, 'pg', 'p', 3), 3);
      await s.stop({ keep: true });
      await psql(PG, `DROP DATABASE ${db} WITH (FORCE)`);
      await psql(PG, `CREATE DATABASE ${db}`);
      const r = await run(['serve', '--listen', '127.0.0.1:0', '--data', dir, '--no-geoip'], { timeoutMs: 15000, env });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /refusing to start/);
      assert.match(r.stderr, /the journal was indexed into store [0-9a-f]{32}, but the PostgreSQL database is a store without an ID/);
      const s2 = await startServer({ dataDir: dir, token: 'unused', keepData: true, flags: ['--adopt-store'] });
      assert.match(s2.logs(), /adopting the store/);
      assert.equal((await s2.stop({ keep: true })).code, 0);
    } finally {
      delete process.env.SPYPIXEL_STORE;
      delete process.env.SPYPIXEL_PG;
    }
  });
});
