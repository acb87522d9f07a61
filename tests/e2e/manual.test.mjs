// manual: docs/spypixel.1 and the settings table (spypixel settings --json, read from
// src/common/config.c) name the same settings: each setting is in the SETTINGS section with its
// flag, environment variable and file key, and the section names no setting that is gone.
// Every command of `spypixel --help` has its place in COMMANDS.
// SPDX-License-Identifier: MIT

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';

import { ROOT, run } from './harness.mjs';

/** roff to plain text, as far as these checks need: escapes out, font changes gone. */
function plain(roff) {
  return roff.replace(/\\f[BIRP]/g, '').replace(/\\-/g, '-').replace(/\\e/g, '\\').replace(/\\ /g, ' ');
}

async function sections() {
  const text = await readFile(path.join(ROOT, 'docs/spypixel.1'), 'utf8');
  const out = {};
  let name = '';
  for (const line of text.split('\n')) {
    const m = /^\.SH\s+"?([^"]+)"?/.exec(line);
    if (m) name = m[1].trim();
    else if (name) out[name] = `${out[name] || ''}${line}\n`;
  }
  return out;
}

test('every setting is in the manual with its flag, environment variable and key', async () => {
  const table = JSON.parse((await run(['settings', '--json'])).stdout);
  const settings = (await sections()).SETTINGS;
  assert.ok(settings, 'a SETTINGS section');
  const missing = [];
  for (const o of table) {
    // The entry: a .TP whose tag is the flag, then its text up to the next .TP or .SS.
    const at = settings.search(new RegExp(`^\\.BI? ${o.flag.replace(/-/g, '\\\\-')}( |$)`, 'm'));
    if (at < 0) {
      missing.push(`${o.flag}: no entry`);
      continue;
    }
    const rest = settings.slice(at);
    const entry = plain(rest.slice(0, rest.slice(1).search(/^\.(TP|SS|SH)/m) + 1));
    if (!entry.includes(o.env)) missing.push(`${o.flag}: no ${o.env}`);
    if (!entry.includes(`file key: ${o.key}`)) missing.push(`${o.flag}: no file key ${o.key}`);
    if (o.repeatable && !/Repeatable/.test(entry)) missing.push(`${o.flag}: not said to be repeatable`);
  }
  assert.deepEqual(missing, []);
});

test('the manual names no setting that the table lacks', async () => {
  const table = JSON.parse((await run(['settings', '--json'])).stdout);
  const names = new Set(table.map((o) => o.name));
  const page = await sections();
  const entries = [...page.SETTINGS.matchAll(/^\.BI? \\-\\-([a-z0-9\\-]+)/gm)].map((m) => m[1].replace(/\\-/g, '-'));
  const stray = entries.filter((n) => !names.has(n) && n !== 'config');
  assert.deepEqual(stray, [], 'settings in the manual that src/common/config.c does not have');
  const envs = new Set(table.map((o) => o.env));
  const all = plain(Object.values(page).join('\n'));
  const strayEnv = [...new Set(all.match(/SPYPIXEL_[A-Z_]+[A-Z]/g))].filter((e) => !envs.has(e) && e !== 'SPYPIXEL_CONFIG' && e !== 'SPYPIXEL_NAME');
  assert.deepEqual(strayEnv, [], 'environment variables that are no setting');
});

test('every command has its place in COMMANDS, with the files, signals and exit codes', async () => {
  const r = await run(['--help']);
  const block = r.stdout.split(/\n\s*\n/).find((b) => /^Commands:/m.test(b));
  const cmds = block.split('\n').slice(1).map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
  const page = await sections();
  const commands = plain(page.COMMANDS);
  for (const c of cmds) assert.match(commands, new RegExp(`^\\.TP\\n\\.B[IR]? "?${c}\\b`, 'm'), `COMMANDS has ${c}`);
  for (const s of ['FILES', 'SIGNALS', 'EXIT STATUS', 'EXAMPLES', 'ENVIRONMENT']) assert.ok(page[s], `a ${s} section`);
  assert.match(page.SIGNALS, /SIGHUP/);
  assert.match(page.SIGNALS, /SIGTERM/);
});
