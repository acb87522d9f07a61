// bench/held.mjs: what held read-time images cost the pixel. Starts spypixel, measures the
// plain pixel with wrk alone, then holds N read-time GIFs of the tracking block open from
// loopback (raw sockets that read every frame) and measures the pixel again while they are
// held: requests/s and latency with and without them, the server's resident memory per held
// connection, and its CPU while it only trickles their frames.
//
//   node bench/held.mjs            (make bench runs it at its end)
//
// Settings (environment): HELD_N (2000), HELD_WRK_SECONDS (5), HELD_WRK_CONNECTIONS (20),
// SPYPIXEL (build/spypixel).
// SPDX-License-Identifier: MIT

import { spawn, execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.resolve(ROOT, process.env.SPYPIXEL || 'build/spypixel');
const N = Number(process.env.HELD_N || 2000);
const WRK_S = Number(process.env.HELD_WRK_SECONDS || 5);
const WRK_C = Number(process.env.HELD_WRK_CONNECTIONS || 20);
const UA = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sh(cmd, args, input) {
  return new Promise((resolve, reject) => {
    const c = execFile(cmd, args, { maxBuffer: 1 << 24 }, (e, stdout, stderr) => (e ? reject(new Error(`${cmd}: ${stderr || e.message}`)) : resolve(stdout)));
    if (input) c.stdin.end(input);
  });
}

async function procStat(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  return {
    rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)[1]),
    threads: Number(/Threads:\s+(\d+)/.exec(status)[1]),
    cpuTicks: Number(stat[11]) + Number(stat[12]), // utime + stime
  };
}

async function wrk(url) {
  const out = await sh('wrk', ['-t1', `-c${WRK_C}`, `-d${WRK_S}s`, '--latency', '--timeout', '5s', '-H', `User-Agent: ${UA}`, url]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  const pct = (p) => (/(\d+)%\s+([\d.]+)(us|ms|s)\b/g.exec(out) && [...out.matchAll(/(\d+)%\s+([\d.]+)(us|ms|s)\b/g)]
    .filter((m) => m[1] === p).map((m) => Number(m[2]) * { us: 0.001, ms: 1, s: 1000 }[m[3]])[0]);
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const sockErr = /Socket errors: (.*)/.exec(out);
  return { rps, p50: pct('50'), p99: pct('99'), non2xx: errors ? Number(errors[1]) : 0, socketErrors: sockErr ? sockErr[1] : 'none' };
}

const dataDir = await mkdtemp(path.join(os.tmpdir(), 'spypixel-held-'));
const port = 20000 + Math.floor(Math.random() * 20000);
const base = `http://127.0.0.1:${port}`;
await sh(BIN, ['campaign', 'create', 'plain', '--data', dataDir]);
const token = (await sh(BIN, ['token', 'create', 'bench', '--data', dataDir])).trim().split('\n').pop();
const server = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir, '--no-geoip',
  '--max-connections', String(N + 2048), '--max-connections-per-ip', '0', '--read-time-max', String(N)],
{ stdio: ['ignore', 'ignore', 'inherit'] });
process.on('exit', () => server.kill('SIGKILL'));
for (let i = 0; i < 100; i++) {
  try {
    if ((await fetch(`${base}/healthz`)).ok) break;
  } catch { /* not yet */ }
  await sleep(100);
}
const post = async (body) => (await fetch(`${base}/api/v1/pixels`, {
  method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
})).json();
const plain = (await post({ campaign: 'plain', recipient: 'p@example.com' })).url;
const block = new URL((await post({ campaign: 'held', recipient: 'h@example.com', block: true })).url);

// The writer indexes what a wrk run journaled behind it: wait until it is done, so that no
// measurement counts it.
async function drained() {
  for (let i = 0; i < 600; i++) {
    const h = await (await fetch(`${base}/healthz`)).json();
    if (h.index_backlog_bytes === 0) return;
    await sleep(100);
  }
}
await wrk(plain); // warm up: the agent's parse cached, the store's pages in
await drained();
const idle = await procStat(server.pid);
const before = await wrk(plain);
await drained();

// N readers, each on its own connection, reading every frame.
const socks = [];
let heads = 0;
let bytes = 0;
const t0 = Date.now();
for (let i = 0; i < N; i++) {
  const s = net.connect({ port, host: '127.0.0.1' });
  let first = true;
  s.on('data', (d) => {
    bytes += d.length;
    if (first) { first = false; heads++; }
  });
  s.on('error', () => {});
  s.write(`GET ${block.pathname} HTTP/1.1\r\nHost: ${block.host}\r\nUser-Agent: ${UA}\r\n\r\n`);
  socks.push(s);
  if (i % 200 === 199) await sleep(20);
}
while (heads < N && Date.now() - t0 < 10000) await sleep(20);
const heldAt = Date.now() - t0;
await sleep(500);
const held = await procStat(server.pid);
const cpu0 = held.cpuTicks;
const tCpu = Date.now();
await sleep(3000);
const cpuIdle = ((await procStat(server.pid)).cpuTicks - cpu0) / 100 / ((Date.now() - tCpu) / 1000);
const during = await wrk(plain);
const stillHeld = Date.now() - t0 < 19000;
const bytesBefore = bytes;
await sleep(1000);
const trickling = bytes > bytesBefore;
for (const s of socks) s.destroy();
await sleep(500);
const after = await procStat(server.pid);
server.kill('SIGTERM');
await new Promise((r) => server.on('exit', r));
await rm(dataDir, { recursive: true, force: true });

const f = (x, d = 2) => (x === undefined ? '?' : x.toFixed(d));
console.log(`held read-time images: ${N} from loopback, all answered their first frame in ${heldAt} ms; `
  + `still held during the second wrk run: ${stillHeld && trickling ? 'yes' : 'NO'}`);
console.log(`pixel alone:        ${f(before.rps, 0)} req/s, p50 ${f(before.p50)} ms, p99 ${f(before.p99)} ms, non-2xx ${before.non2xx}, socket errors ${before.socketErrors}`);
console.log(`pixel, ${N} held: ${f(during.rps, 0)} req/s, p50 ${f(during.p50)} ms, p99 ${f(during.p99)} ms, non-2xx ${during.non2xx}, socket errors ${during.socketErrors}`);
console.log(`server RSS: ${idle.rssKiB} KiB before, ${held.rssKiB} KiB with ${N} held: `
  + `${f((held.rssKiB - idle.rssKiB) / N, 1)} KiB per held connection; ${after.rssKiB} KiB after they closed`);
console.log(`server threads: ${idle.threads} before, ${held.threads} with ${N} held`);
console.log(`server CPU while only trickling frames to ${N}: ${f(cpuIdle * 100, 1)}% of one core`);
if (!(stillHeld && trickling) || held.threads !== idle.threads) process.exitCode = 1;
