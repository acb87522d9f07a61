// harness: end-to-end tests run the real spypixel binary on a free loopback port with a
// fresh data folder, and talk to it over HTTP (node:http, or raw sockets for bytes that no
// HTTP client would send). Every wait is bounded; every server is stopped at the end.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.resolve(ROOT, process.env.SPYPIXEL_BIN || 'build/spypixel');

export const GIF_LENGTH = 43;
export const NO_CACHE = 'no-store, no-cache, must-revalidate, max-age=0';

/** User agents used across the suite. */
export const UA = {
  thunderbird: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0',
  chrome: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
  gmail: 'Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)',
  curl: 'curl/8.5.0',
};

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Children still running when the test process ends are killed, whatever failed, and the
// temporary folders it made are removed: a test that failed, or forgot its own, leaves none.
const children = new Set();
const tempDirs = new Set();
process.on('exit', () => {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
  for (const d of tempDirs) {
    try { rmSync(d, { recursive: true, force: true, maxRetries: 3 }); } catch { /* still mounted, or busy */ }
  }
});

// Ports this test process has handed out. The kernel may give the port it has just freed
// to the next bind to port 0 (about 1 pair in 5,000 here), and a test that asks for two
// ports before its server binds either would then get one port twice.
const handedPorts = new Set();

/** A TCP port on 127.0.0.1, free now and never handed out before in this process. */
export async function freePort() {
  for (let tries = 1; ; tries++) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.on('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const { port: p } = srv.address();
        srv.close(() => resolve(p));
      });
    });
    if (!handedPorts.has(port) || tries === 100) {
      handedPorts.add(port);
      return port;
    }
  }
}

export async function tempDir(prefix = 'spypixel-e2e-') {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Runs BIN ARGS (in CWD) to completion; resolves {code, signal, stdout, stderr}. */
export function run(args, { input = '', env, cwd, timeoutMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { cwd, stdio: ['pipe', 'pipe', 'pipe'], env: env ? { ...process.env, ...env } : process.env });
    children.add(child);
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`spypixel ${args.join(' ')}: timed out\n${stderr}`));
    }, timeoutMs);
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.stdin.on('error', () => { /* the program may exit before reading stdin */ });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${BIN}: ${e.message} (build it with make, or set SPYPIXEL_BIN)`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      try {
        checkSanitizers(stderr);
      } catch (e) {
        reject(new Error(`spypixel ${args.join(' ')}: ${e.message}`));
        return;
      }
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** Runs the sqlite3 command-line shell on DB with SQL; resolves its stdout. */
export function sqlite(db, sql) {
  return new Promise((resolve, reject) => {
    execFile('sqlite3', ['-cmd', '.timeout 10000', db, sql], { timeout: 20000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`sqlite3: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/**
 * One HTTP request with full control of headers and local address. HEADERS may be an
 * object or an array of [name, value] pairs (repeated names allowed). No User-Agent is
 * sent unless given. Resolves {status, headers, rawHeaders, body (Buffer), text, json()}.
 */
export function request(url, { method = 'GET', headers = {}, body, localAddress, agent = false, timeoutMs = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const payload = body === undefined ? undefined
      : Buffer.isBuffer(body) ? body
        : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    let h = Array.isArray(headers) ? headers.flat() : { ...headers };
    // node sends no Host of its own with an array of headers; every real client does.
    if (Array.isArray(h) && !headers.some(([k]) => k.toLowerCase() === 'host')) h.push('Host', u.host);
    if (payload) {
      if (Array.isArray(h)) h.push('Content-Length', String(payload.length));
      else {
        if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'application/json';
        h['Content-Length'] = String(payload.length);
      }
    }
    const req = http.request({
      host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port, path: `${u.pathname}${u.search}`, method, headers: h,
      localAddress, agent, timeout: timeoutMs,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        const text = buf.toString('utf8');
        resolve({
          status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders, body: buf, text,
          json() {
            try { return JSON.parse(text); } catch (e) { throw new Error(`not JSON (${e.message}): ${text.slice(0, 500)}`); }
          },
        });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * Sends BYTES (a Buffer or string, written as is) on a fresh socket to PORT and collects
 * everything until the server closes or the time runs out. Resolves {raw (Buffer), status,
 * head (string), body (Buffer)}; status is null when no status line came.
 */
export function rawRequest(port, bytes, { timeoutMs = 10000, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress });
    const chunks = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const raw = Buffer.concat(chunks);
      const split = raw.indexOf('\r\n\r\n');
      const head = (split >= 0 ? raw.subarray(0, split) : raw).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      let body = split >= 0 ? raw.subarray(split + 4) : Buffer.alloc(0);
      const len = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      if (len) body = body.subarray(0, Number(len[1]));
      resolve({ raw, head, body, status: m ? Number(m[1]) : null });
    };
    const timer = setTimeout(finish, timeoutMs);
    sock.on('data', (d) => {
      chunks.push(d);
      // A complete answer with Content-Length: no need to wait for the close.
      const raw = Buffer.concat(chunks);
      const split = raw.indexOf('\r\n\r\n');
      if (split >= 0) {
        const len = /\r\ncontent-length:\s*(\d+)/i.exec(raw.subarray(0, split).toString('latin1'));
        if (len && raw.length >= split + 4 + Number(len[1])) finish();
      }
    });
    sock.on('end', finish);
    sock.on('close', finish);
    sock.on('error', (e) => {
      if (chunks.length) finish();
      else if (!done) { done = true; clearTimeout(timer); reject(e); }
    });
    sock.write(bytes);
  });
}

/** Parses Prometheus text into {name or name{labels}: number}. */
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

/** Parses RFC 4180 CSV (quoted fields with "", commas and newlines inside) into arrays of fields. */
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { row.push(field); field = ''; } else if (ch === '\n') { row.push(field); rows.push(row); row = []; field = ''; } else if (ch !== '\r') field += ch;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

/** Builds a /spy-pixel.gif path; PARAMS is an object (undefined values left out) or a raw query string. */
export function pixelPath(params) {
  if (typeof params === 'string') return `/spy-pixel.gif${params ? `?${params}` : ''}`;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, v);
  const s = q.toString();
  return `/spy-pixel.gif${s ? `?${s}` : ''}`;
}

/** Reads the Set-Cookie values of a response into {name: value}. */
export function setCookies(res) {
  const out = {};
  for (const c of [].concat(res.headers['set-cookie'] || [])) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    out[pair.slice(0, i).trim()] = pair.slice(i + 1).trim();
  }
  return out;
}

/** The full Set-Cookie line for NAME, or undefined. */
export function setCookieLine(res, name) {
  return [].concat(res.headers['set-cookie'] || []).find((c) => c.startsWith(`${name}=`));
}

/**
 * Prepares a data folder: a user (password on stdin), an API token and campaigns, all
 * through the CLI. Returns {dataDir, user, password, token}.
 */
export async function prepareData({ dataDir, user = 'admin', password = 'correct horse battery staple', campaigns = [] } = {}) {
  const dir = dataDir || await tempDir();
  const added = await run(['user', 'add', user, '--password-stdin', '--data', dir], { input: `${password}\n` });
  if (added.code !== 0) throw new Error(`user add failed (${added.code}): ${added.stderr}`);
  const tok = await run(['token', 'create', 'e2e', '--data', dir]);
  const token = tok.stdout.trim();
  if (tok.code !== 0 || !/^spt_\S+$/.test(token)) throw new Error(`token create failed (${tok.code}): ${tok.stdout} ${tok.stderr}`);
  for (const c of campaigns) {
    const r = await run(['campaign', 'create', c, '--data', dir]);
    if (r.code !== 0) throw new Error(`campaign create ${c} failed (${r.code}): ${r.stderr}`);
  }
  return { dataDir: dir, user, password, token };
}

/**
 * Holds SQLite's write lock on DATA_DIR's database from another process (the sqlite3
 * shell), as another program could: the server's writer cannot commit until release().
 * Resolves once the lock is held.
 */
export async function lockStore(dataDir) {
  const shell = spawn('sqlite3', [path.join(dataDir, 'spypixel.db')], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(shell);
  let out = '';
  shell.stdout.on('data', (d) => { out += d; });
  shell.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => shell.on('exit', () => { children.delete(shell); resolve(); }));
  shell.stdin.write(".timeout 10000\nBEGIN IMMEDIATE;\nSELECT 'locked';\n");
  for (let i = 0; i < 200 && !out.includes('locked'); i++) await sleep(25);
  if (!out.includes('locked')) {
    shell.kill('SIGKILL');
    throw new Error(`sqlite3 did not take the lock: ${out}`);
  }
  return {
    async release() {
      shell.stdin.end('COMMIT;\n.quit\n');
      await exited;
    },
  };
}

/**
 * Starts `spypixel serve` on a free port and waits for /healthz. Options:
 *   flags: extra flags; geoip: false adds --no-geoip (default); campaigns: created first;
 *   dataDir/token/user/password: reuse a prepared folder (restart); keepData: leave the
 *   folder at stop(); env: extra environment; degraded: a 503 from /healthz counts as up
 *   (a server started on a store it finds faulted).
 * Returns a handle; call stop() (SIGTERM) or kill9() at the end.
 */
export async function startServer(opts = {}) {
  const { flags = [], geoip = false, campaigns = [], env, keepData = false, degraded = false } = opts;
  let data;
  if (opts.dataDir && opts.token) {
    data = { dataDir: opts.dataDir, token: opts.token, user: opts.user || 'admin', password: opts.password || 'correct horse battery staple' };
    for (const c of campaigns) await run(['campaign', 'create', c, '--data', data.dataDir]);
  } else {
    data = await prepareData({ dataDir: opts.dataDir, user: opts.user, password: opts.password, campaigns });
  }
  const port = opts.port || await freePort();
  const base = `http://127.0.0.1:${port}`;
  const args = ['serve', '--listen', `127.0.0.1:${port}`, '--data', data.dataDir, ...(geoip ? [] : ['--no-geoip']), ...flags];
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ? { ...process.env, ...env } : process.env });
  children.add(child);
  let log = '';
  const keep = (d) => {
    log += d;
    if (log.length > 400000) log = log.slice(-200000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  const exitedP = new Promise((resolve) => child.on('exit', (code, signal) => {
    exited = { code, signal };
    children.delete(child);
    resolve(exited);
  }));

  let ready = false;
  for (let i = 0; i < 150 && !exited; i++) {
    try {
      const r = await request(`${base}/healthz`, { timeoutMs: 2000 });
      if (r.status === 200 || (degraded && r.status === 503)) { ready = true; break; }
    } catch { /* not listening yet */ }
    await sleep(100);
  }
  if (!ready) {
    child.kill('SIGKILL');
    await exitedP;
    if (!keepData) await rm(data.dataDir, { recursive: true, force: true });
    throw new Error(`spypixel did not become healthy on ${base}${exited ? ` (exited ${JSON.stringify(exited)})` : ''}\n${log}`);
  }

  const srv = {
    ...data, base, port, child, pid: child.pid,
    logs: () => log,
    exited: () => exited,
    /** Raw HTTP request to PATH on this server (see request()). */
    req(p, o = {}) { return request(`${base}${p}`, o); },
    /** API call with the bearer token; resolves the full response (not thrown on errors). */
    api(method, apiPath, body, headers = {}) {
      return request(`${base}/api/v1${apiPath}`, { method, body, headers: { Authorization: `Bearer ${data.token}`, ...headers } });
    },
    /** API call that must answer 2xx; resolves the parsed JSON. */
    async apiOk(method, apiPath, body) {
      const r = await srv.api(method, apiPath, body);
      if (r.status < 200 || r.status > 299) throw new Error(`${method} /api/v1${apiPath}: ${r.status} ${r.text}`);
      return r.text ? r.json() : null;
    },
    /** GET /spy-pixel.gif with PARAMS (object or raw query) and HEADERS; resolves the response. */
    pixel(params, headers = {}, o = {}) { return request(`${base}${pixelPath(params)}`, { headers, ...o }); },
    campaign(id, query = '') { return srv.apiOk('GET', `/campaigns/${encodeURIComponent(id)}${query}`); },
    events(id, query = '?limit=100000') { return srv.apiOk('GET', `/campaigns/${encodeURIComponent(id)}/events${query}`); },
    /** Waits (bounded) until the store holds every open this server has answered. */
    async indexed(timeoutMs = 15000) {
      const t0 = Date.now();
      for (;;) {
        const r = await request(`${base}/healthz`);
        if (r.status === 200 && r.json().index_backlog_bytes === 0) return;
        if (Date.now() - t0 > timeoutMs) throw new Error(`index backlog still ${r.text} after ${timeoutMs} ms`);
        await new Promise((res) => setTimeout(res, 20));
      }
    },
    async metrics() {
      const r = await request(`${base}/metrics`);
      if (r.status !== 200) throw new Error(`/metrics: ${r.status}`);
      return parseMetrics(r.text);
    },
    /** POST /api/v1/login; resolves {res, cookies, csrf, cookieHeader}. */
    async login(user = data.user, password = data.password, o = {}) {
      const res = await request(`${base}/api/v1/login`, { method: 'POST', body: { user, password }, ...o });
      const cookies = setCookies(res);
      let csrf;
      try { csrf = res.json().csrf; } catch { /* not JSON */ }
      const cookieHeader = Object.entries(cookies).map(([k, v]) => `${k}=${v}`).join('; ');
      return { res, cookies, csrf, cookieHeader };
    },
    /**
     * SIGTERM, then wait (bounded) for the exit; removes the data folder unless keepData.
     * Throws when a sanitizer (ASan/UBSan builds) reported anything in the server's log.
     */
    async stop({ keep = keepData, timeoutMs = 20000 } = {}) {
      if (!exited) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await exitedP;
        clearTimeout(t);
      }
      if (!keep) await rm(data.dataDir, { recursive: true, force: true });
      checkSanitizers(log);
      return exited;
    },
    /** SIGKILL; the data folder stays. */
    async kill9() {
      if (!exited) {
        child.kill('SIGKILL');
        await exitedP;
      }
      checkSanitizers(log);
      return exited;
    },
    waitExit() { return exitedP; },
  };
  return srv;
}

/**
 * Runs `spypixel ARGS` as a server whose address comes from wherever ARGS, ENV or a config
 * file put it, and waits (bounded) until one of PORTS on 127.0.0.1 (or the PROBE URL)
 * answers /healthz. BIN is another spypixel binary to run (an installed one). Resolves {port
 * (the one that answered), child, stop(), logs()}; rejects if none answers or the process
 * exits.
 */
export async function startRaw(args, { env, ports = [], probe, timeoutMs = 15000, bin = BIN } = {}) {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.add(child);
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  let exited = null;
  const exitedP = new Promise((resolve) => child.on('exit', (code, signal) => {
    exited = { code, signal };
    children.delete(child);
    resolve(exited);
  }));
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10000);
      await exitedP;
      clearTimeout(t);
    }
    checkSanitizers(log);
    return exited;
  };
  const end = Date.now() + timeoutMs;
  const urls = ports.map((port) => [port, `http://127.0.0.1:${port}/healthz`]);
  if (probe) urls.push([null, probe]);
  while (!exited && Date.now() < end) {
    for (const [port, url] of urls) {
      try {
        const r = await request(url, { timeoutMs: 1000 });
        if (r.status === 200) return { port, child, stop, logs: () => log };
      } catch { /* not this one */ }
    }
    await sleep(100);
  }
  await stop();
  throw new Error(`spypixel ${args.join(' ')} did not answer on any of ${urls.map((u) => u[1]).join(', ')}${exited ? ` (exited ${JSON.stringify(exited)})` : ''}\n${log}`);
}

/** Throws with the report when LOG holds an AddressSanitizer, LeakSanitizer or UBSan finding. */
export function checkSanitizers(log) {
  const m = /(==\d+==ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: (Address|Undefined)\w*Sanitizer)/.exec(log);
  if (m) {
    const at = Math.max(0, log.lastIndexOf('\n', m.index));
    throw new Error(`sanitizer report in the server log:\n${log.slice(at, at + 6000)}`);
  }
}

/** Waits until FN() resolves truthy, polling every STEP ms, at most TIMEOUT ms; returns its value. */
export async function waitFor(fn, { timeoutMs = 10000, stepMs = 100, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(stepMs);
  }
}

/** Asserts that RES is exactly the tracking GIF with the headers that stop every cache. */
export function assertPixel(res, what = 'pixel') {
  assert.equal(res.status, 200, `${what}: status`);
  assert.equal(res.headers['content-type'], 'image/gif', `${what}: Content-Type`);
  assert.equal(res.body.length, GIF_LENGTH, `${what}: body length`);
  assert.equal(res.body.subarray(0, 6).toString('latin1'), 'GIF89a', `${what}: GIF signature`);
  assert.equal(res.body[GIF_LENGTH - 1], 0x3b, `${what}: GIF trailer`);
  assert.equal(res.headers['cache-control'], NO_CACHE, `${what}: Cache-Control`);
  assert.equal(res.headers.pragma, 'no-cache', `${what}: Pragma`);
  assert.equal(res.headers.expires, '0', `${what}: Expires`);
}
