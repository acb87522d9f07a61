// tls: throw-away certificates made with Debian's openssl for the HTTPS tests, an HTTPS
// client that trusts them, and a server on an https:// and an http:// address.
// SPDX-License-Identifier: MIT

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';

import { freePort, prepareData, startRaw } from './harness.mjs';

function openssl(args, cwd) {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 20000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`openssl ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** A CA in DIR (ca.pem, ca.key). Resolves {dir, ca (path), cert(name, cn)}. */
export async function makeCA(dir) {
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=spypixel test CA'], dir);
  await writeFile(path.join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  return {
    dir,
    ca: path.join(dir, 'ca.pem'),
    /** Makes NAME.pem and NAME.key for CN, signed by the CA; resolves {cert, key}. */
    async cert(name, cn) {
      await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
      await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key',
        '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', 'san.ext'], dir);
      return { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
    },
    /** The base64 SHA-256 of a certificate's public key (Chromium's SPKI pin). */
    async spki(certPath) {
      const der = await new Promise((resolve, reject) => {
        execFile('sh', ['-c', `openssl x509 -in '${certPath}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`],
          { timeout: 20000 }, (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
      });
      return der;
    },
  };
}

/**
 * One HTTPS request trusting CA; AGENT (an https.Agent) keeps a connection for the next.
 * Resolves {status, headers, body, text, cn (the server certificate's CN), socket}.
 */
export function httpsRequest(url, { ca: caIn, method = 'GET', headers = {}, body, agent = false, minVersion, maxVersion } = {}) {
  const ca = caIn && !String(caIn).includes('-----BEGIN') ? readFileSync(caIn) : caIn; // a path
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const h = { ...headers };
    if (payload) {
      h['Content-Type'] = h['Content-Type'] || 'application/json';
      h['Content-Length'] = String(payload.length);
    }
    const req = https.request(url, { method, headers: h, ca, agent, minVersion, maxVersion, timeout: 15000 }, (res) => {
      const chunks = [];
      // Read now: a kept-alive socket goes back to its agent at the end.
      const { socket } = res;
      const cn = socket.getPeerCertificate()?.subject?.CN;
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({ status: res.statusCode, headers: res.headers, body: buf, text: buf.toString('utf8'), cn, socket });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * Serves HTTPS on one port and plain HTTP on another, with the pair in CERT/KEY. FLAGS are
 * more serve flags. Resolves {https, http, dataDir, token, user, password, stop(), logs(),
 * child}.
 */
export async function startTls({ cert, key, flags = [], env } = {}) {
  const data = await prepareData({});
  const [tlsPort, httpPort] = [await freePort(), await freePort()];
  const srv = await startRaw(['serve', '--listen', `https://127.0.0.1:${tlsPort}`, '--listen', `http://127.0.0.1:${httpPort}`,
    '--tls-cert', cert, '--tls-key', key, '--data', data.dataDir, '--no-geoip', ...flags], { ports: [httpPort], env });
  return { ...data, ...srv, https: `https://127.0.0.1:${tlsPort}`, http: `http://127.0.0.1:${httpPort}`, tlsPort, httpPort };
}
