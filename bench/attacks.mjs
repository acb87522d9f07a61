// attacks: measures what cheap attacks cost a running spypixel (resident memory, how long
// the pixel stops answering). Reproduces the findings the tests in tests/e2e/limits.test.mjs
// guard, with the full-size numbers.
// SPDX-License-Identifier: MIT
//
//   node bench/attacks.mjs body        40 unauthenticated 8 MB uploads to /api/v1/images
//   node bench/attacks.mjs slowloris   4,200 connections sending a header line every 4 s
//   node bench/attacks.mjs slowread    40 slow readers of an uploaded 8 MiB image
//   node bench/attacks.mjs largeheaders 20,000 opens with three 4 KB headers of control bytes,
//                                      sent while the store is write-locked
//
// SPYPIXEL_BIN chooses the binary (default build/spypixel); extra server flags after the
// attack's name. Every figure comes from /proc/PID/status of the server (VmRSS, VmHWM).

import net from 'node:net';
import { readFileSync } from 'node:fs';

import { lockStore, sleep, startServer } from '../tests/e2e/harness.mjs';

const mib = (kb) => `${(kb / 1024).toFixed(1)} MiB`;

function memory(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)[1]);
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Writes HEAD then up to BODY_BYTES on a socket until an answer or a close comes. */
function upload(port, head, bodyBytes, localAddress) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress });
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    let sent = 0;
    let answer = '';
    let done = false;
    const finish = (why) => {
      if (done) return;
      done = true;
      sock.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(answer);
      resolve({ status: m ? Number(m[1]) : null, sentBeforeAnswer: sent, why });
    };
    sock.on('data', (d) => {
      answer += d.toString('latin1');
      if (answer.includes('\r\n\r\n')) setTimeout(() => finish('answered'), 200);
    });
    sock.on('error', () => finish('error'));
    sock.on('close', () => finish('closed'));
    sock.on('connect', async () => {
      sock.write(head);
      while (!done && sent < bodyBytes && !answer) {
        const n = Math.min(chunk.length, bodyBytes - sent);
        sent += n;
        if (!sock.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          await new Promise((r) => { sock.once('drain', r); sock.once('close', r); });
        }
      }
    });
  });
}

async function body(flags) {
  const srv = await startServer({ flags });
  try {
    const before = memory(srv.pid);
    const size = 8_000_000;
    const head = `POST /api/v1/images?campaign=x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: ${size}\r\n\r\n`;
    const t0 = Date.now();
    const results = await Promise.all(Array.from({ length: 40 }, () => upload(srv.port, head, size)));
    const after = memory(srv.pid);
    const statuses = {};
    for (const r of results) statuses[r.status] = (statuses[r.status] || 0) + 1;
    const sent = results.map((r) => r.sentBeforeAnswer).sort((a, b) => a - b);
    console.log(`40 unauthenticated uploads of ${size} bytes to /api/v1/images (${Date.now() - t0} ms)`);
    console.log(`  answers: ${JSON.stringify(statuses)}; body bytes sent before the answer: median ${sent[20]}, max ${sent[39]}`);
    console.log(`  server resident: before ${mib(before.rss)}, peak ${mib(after.hwm)}, after ${mib(after.rss)}`);
  } finally {
    await srv.stop();
  }
}

async function slowloris(flags) {
  const N = Number(process.env.ATTACK_CONNECTIONS || 4200);
  const seconds = Number(process.env.ATTACK_SECONDS || 40);
  const srv = await startServer({ flags, campaigns: ['x'] });
  const socks = new Set();
  let opened = 0;
  let stop = false;
  const open = (i) => {
    if (stop) return;
    const sock = net.connect({ port: srv.port, host: '127.0.0.1', localAddress: `127.0.0.${2 + (i % 4)}` });
    socks.add(sock);
    opened++;
    sock.on('connect', () => sock.write('GET /spy-pixel.gif?campaign=x HTTP/1.1\r\nHost: 127.0.0.1\r\n'));
    sock.on('data', () => {});
    sock.on('error', () => {});
    // An attacker reopens what the server closes, to keep the pressure on.
    sock.on('close', () => { socks.delete(sock); setTimeout(() => open(i), 100); });
  };
  try {
    const before = memory(srv.pid);
    for (let i = 0; i < N; i++) {
      open(i);
      if (i % 100 === 99) await sleep(20);
    }
    const trickle = setInterval(() => { for (const s of socks) if (s.writable) s.write(`X-${Date.now() % 1000}: a\r\n`); }, 4000);
    const t0 = Date.now();
    let worst = 0;
    let failures = 0;
    let longestGap = 0;
    let lastOk = t0;
    while (Date.now() - t0 < seconds * 1000) {
      const s0 = Date.now();
      let ok = false;
      try {
        const r = await srv.pixel({ campaign: 'x', email: 'probe' }, {}, { timeoutMs: 30000 });
        ok = r.status === 200;
      } catch { /* no answer */ }
      const ms = Date.now() - s0;
      worst = Math.max(worst, ms);
      if (ok) {
        longestGap = Math.max(longestGap, Date.now() - lastOk);
        lastOk = Date.now();
      } else failures++;
      await sleep(Math.max(0, 1000 - ms));
    }
    longestGap = Math.max(longestGap, Date.now() - lastOk);
    clearInterval(trickle);
    stop = true;
    const after = memory(srv.pid);
    console.log(`${N} connections from 127.0.0.2-5 sending a header line every 4 s, ${seconds} s (${opened} opened in all)`);
    console.log(`  a pixel request from 127.0.0.1 every second: slowest answer ${worst} ms, ${failures} without an answer, longest time without an answer ${longestGap} ms`);
    console.log(`  server resident: before ${mib(before.rss)}, peak ${mib(after.hwm)}`);
  } finally {
    stop = true;
    for (const s of socks) s.destroy();
    await srv.stop();
  }
}

async function slowread(flags) {
  const srv = await startServer({ flags, campaigns: ['x'] });
  const socks = [];
  try {
    const png = Buffer.alloc(8 << 20, 0x42);
    Buffer.from('\x89PNG\r\n\x1a\n', 'latin1').copy(png);
    const up = await srv.api('POST', '/images?campaign=x', png, { 'Content-Type': 'image/png' });
    if (up.status !== 201) throw new Error(`upload: ${up.status} ${up.text}`);
    const path = new URL(up.json().url).pathname;
    await srv.req(path); // one reader first, as a mail client would
    await sleep(500);
    const before = memory(srv.pid);
    for (let i = 0; i < 40; i++) {
      const sock = net.connect({ port: srv.port, host: '127.0.0.1' });
      sock.setNoDelay(true);
      sock.on('error', () => {});
      sock.on('connect', () => { sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`); sock.pause(); });
      socks.push(sock);
    }
    await sleep(3000);
    const during = memory(srv.pid);
    console.log('40 readers of an uploaded 8 MiB image that read nothing');
    console.log(`  server resident: before ${mib(before.rss)}, with the readers ${mib(during.rss)} (peak ${mib(during.hwm)}): ${mib(during.rss - before.rss)} more`);
  } finally {
    for (const s of socks) s.destroy();
    await srv.stop();
  }
}

/**
 * Sends N pixel requests with HEAD over one keep-alive connection, each after the last answer;
 * resolves the number answered 200.
 */
function keepAliveOpens(port, head, n) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    let buf = Buffer.alloc(0);
    let sent = 0;
    let ok = 0;
    sock.on('error', reject);
    sock.on('connect', () => { sock.write(head); sent++; });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const text = buf.subarray(0, end).toString('latin1');
        const length = Number((/content-length:\s*(\d+)/i.exec(text) || [0, 0])[1]);
        if (buf.length < end + 4 + length) return;
        ok += text.startsWith('HTTP/1.1 200') ? 1 : 0;
        buf = buf.subarray(end + 4 + length);
        if (sent === n) {
          sock.destroy();
          resolve(ok);
          return;
        }
        sock.write(head);
        sent++;
      }
    });
  });
}

async function largeheaders(flags) {
  const srv = await startServer({ flags, campaigns: ['hx'] });
  try {
    const n = 20000;
    const value = '\x01'.repeat(4096); // each byte escaped as \u0001 in the row's JSON
    const head = 'GET /spy-pixel.gif?campaign=hx&email=a%40example.com HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
      `X-A: ${value}\r\nX-B: ${value}\r\nX-C: ${value}\r\n\r\n`;
    const before = memory(srv.pid);
    const lock = await lockStore(srv.dataDir);
    const t0 = Date.now();
    const ok = await keepAliveOpens(srv.port, Buffer.from(head, 'latin1'), n);
    const answered = Date.now() - t0;
    await lock.release();
    await srv.indexed(120000);
    const after = memory(srv.pid);
    console.log(`${n} opens with three 4 KB headers of control bytes, the store write-locked while they came (${answered} ms)`);
    console.log(`  answered 200: ${ok}; server resident: before ${mib(before.rss)}, peak ${mib(after.hwm)}, once indexed ${mib(after.rss)}`);
  } finally {
    await srv.stop();
  }
}

const [what, ...flags] = process.argv.slice(2);
const attacks = { body, slowloris, slowread, largeheaders };
if (!attacks[what]) {
  console.error('usage: node bench/attacks.mjs body|slowloris|slowread|largeheaders [SERVER FLAGS...]');
  process.exit(2);
}
await attacks[what](flags);
