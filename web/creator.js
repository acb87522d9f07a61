// creator: makes a signed pixel for a campaign and recipient and copies it, without ever
// loading it here (loading it would record the sender's own view).
// SPDX-License-Identifier: MIT

import { api, ApiError } from './api.js';
import { h, clear, idProblem, campaignHref } from './dom.js';

/** Quoted-printable (RFC 2045) of an ASCII/UTF-8 string, lines of at most 76 characters. */
export function quotedPrintable(text) {
  const bytes = new TextEncoder().encode(text);
  const out = [];
  let line = '';
  const push = (tok) => {
    if (line.length + tok.length > 75) {
      out.push(`${line}=`);
      line = '';
    }
    line += tok;
  };
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x0a) {
      out.push(line);
      line = '';
      continue;
    }
    const last = i + 1 === bytes.length || bytes[i + 1] === 0x0a;
    const plain = (b >= 33 && b <= 126 && b !== 61) || ((b === 32 || b === 9) && !last);
    push(plain ? String.fromCharCode(b) : `=${b.toString(16).toUpperCase().padStart(2, '0')}`);
  }
  out.push(line);
  return out.join('\r\n');
}

/** Puts HTML on the clipboard as rich HTML and as its source text. HTML may be a promise. */
async function copyRich(htmlPromise) {
  if (navigator.clipboard && window.ClipboardItem) {
    const blob = (type) => Promise.resolve(htmlPromise).then((s) => new Blob([s], { type }));
    try {
      await navigator.clipboard.write([new ClipboardItem({ 'text/html': blob('text/html'), 'text/plain': blob('text/plain') })]);
      return true;
    } catch (err) {
      if (err instanceof ApiError) throw err;
      // Fall through to the copy event below.
    }
  }
  const html = await htmlPromise;
  const onCopy = (e) => {
    e.clipboardData.setData('text/html', html);
    e.clipboardData.setData('text/plain', html);
    e.preventDefault();
  };
  document.addEventListener('copy', onCopy);
  try {
    return document.execCommand('copy');
  } finally {
    document.removeEventListener('copy', onCopy);
  }
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

function idField({ id, label, hint, required, value, listId }) {
  const input = h('input', {
    id, name: id, value, required, list: listId, autocomplete: 'off', autocapitalize: 'none',
    spellcheck: 'false', maxlength: 512, 'aria-describedby': `id-help ${id}-error`,
    placeholder: hint,
  });
  const error = h('p', { class: 'field-error', id: `${id}-error` });
  return {
    input,
    error,
    el: h('div', { class: 'field' },
      h('label', { for: id }, label, required ? null : h('span', { class: 'muted' }, ' (optional)')),
      input, error),
  };
}

export function renderCreator(root, { campaign = '' } = {}) {
  const datalist = h('datalist', { id: 'campaign-list' });
  const camp = idField({ id: 'campaign', label: 'Campaign ID', hint: 'spring-newsletter', required: true, value: campaign, listId: 'campaign-list' });
  const recp = idField({ id: 'recipient', label: 'Recipient', hint: 'alice@example.com', required: false, value: '' });
  const copy = h('button', { type: 'submit', id: 'copy-pixel', disabled: true }, 'Copy pixel');
  const blockBox = h('input', { type: 'checkbox', id: 'block', 'aria-describedby': 'block-help' });
  const block = h('div', { class: 'field' }, h('label', {}, blockBox, ' Tracking block'),
    h('p', { class: 'help', id: 'block-help' }, 'A style, one element and the image in place of the lone image: it also times the read (glanced, skimmed, read) and records prints and forwards.'));
  const status = h('p', { id: 'copy-status', class: 'status', role: 'status', 'aria-live': 'polite' });
  const snippet = h('section', { id: 'snippet', class: 'card snippet', hidden: true, 'aria-labelledby': 'snippet-title' });

  const help = h('p', { id: 'id-help', class: 'help' },
    'IDs may hold letters (A–Z, a–z), digits (0–9) and ', h('code', {}, '-'), ' ', h('code', {}, '_'), ' ',
    h('code', {}, '@'), ' ', h('code', {}, '+'), ' ', h('code', {}, '.'),
    ', up to 128 characters: no spaces. A new campaign ID creates the campaign.');

  const form = h('form', { class: 'card creator', id: 'creator-form', novalidate: true },
    camp.el, datalist, recp.el, help, block,
    h('div', { class: 'actions' }, copy,
      h('span', { class: 'muted small' }, 'Copies the pixel as rich HTML and as HTML text. It is not loaded here.')),
    status);

  const link = linkForm(() => ({ campaign: camp.input.value, recipient: recp.input.value, ok: check() }));
  const image = imageForm(() => ({ campaign: camp.input.value, recipient: recp.input.value, ok: check() }));

  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Create a tracking pixel')),
    h('p', { class: 'lead' }, 'A 1×1 transparent image with an opaque, signed address: it names neither the campaign nor the recipient, and cannot be forged for another one.'),
    form, snippet, link, image);

  let touched = { campaign: !!campaign, recipient: false };
  const check = () => {
    let ok = true;
    for (const [f, required, key] of [[camp, true, 'campaign'], [recp, false, 'recipient']]) {
      const problem = idProblem(f.input.value, { required });
      const shown = problem === 'required' ? (touched[key] ? 'A campaign ID is required.' : '') : problem;
      const bad = problem !== '' && problem !== 'required';
      f.input.setAttribute('aria-invalid', bad || (problem === 'required' && touched[key]) ? 'true' : 'false');
      f.error.textContent = shown;
      if (problem) ok = false;
    }
    copy.disabled = !ok;
    return ok;
  };
  for (const [f, key] of [[camp, 'campaign'], [recp, 'recipient']]) {
    f.input.addEventListener('input', () => {
      touched[key] = touched[key] || f.input.value !== '';
      check();
    });
    f.input.addEventListener('blur', () => {
      if (key === 'campaign') touched.campaign = true;
      check();
    });
  }
  check();

  api('/campaigns').then((list) => {
    for (const c of Array.isArray(list) ? list : []) datalist.append(h('option', { value: c.id }));
  }).catch(() => {});

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    touched = { campaign: true, recipient: true };
    if (!check()) {
      (camp.input.getAttribute('aria-invalid') === 'true' ? camp.input : recp.input).focus();
      return;
    }
    const body = { campaign: camp.input.value, recipient: recp.input.value };
    if (blockBox.checked) body.block = true;
    copy.disabled = true;
    status.textContent = 'Creating the pixel…';
    status.dataset.state = '';
    const made = api('/pixels', { method: 'POST', body });
    let copied = false;
    let result = null;
    try {
      // The clipboard write starts inside the click, with the server's answer still on its
      // way, so that the browser keeps the user's permission to write.
      copied = await copyRich(made.then((r) => r.html));
      result = await made;
    } catch (err) {
      try {
        result = await made;
      } catch (apiErr) {
        status.dataset.state = 'bad';
        status.textContent = `Could not create the pixel: ${apiErr.message}`;
        copy.disabled = false;
        return;
      }
      copied = false;
    }
    copy.disabled = false;
    status.dataset.state = copied ? 'good' : 'bad';
    status.textContent = copied
      ? 'Copied. Paste it at the end of your email’s body.'
      : 'The browser did not let the page copy: select the HTML below and copy it.';
    showSnippet(snippet, body, result);
    if (!datalist.querySelector(`option[value="${CSS.escape(body.campaign)}"]`)) datalist.append(h('option', { value: body.campaign }));
  });
}

/** A link target the server accepts: http(s), no spaces, quotes or angle brackets. */
export function targetProblem(v) {
  if (!v) return 'Enter the address the link should lead to.';
  let u;
  try {
    u = new URL(v);
  } catch {
    return 'Not a full address: start with https://';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return 'Only http:// and https:// addresses.';
  if (/[\s"<>]/.test(v)) return 'No spaces, quotes or angle brackets: encode them (%20…).';
  return '';
}

/** The tracked-link maker: same campaign and recipient as the pixel, and a destination. */
function linkForm(ids) {
  const target = h('input', { id: 'target', name: 'target', type: 'url', placeholder: 'https://example.com/offer', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'target-error target-help' });
  const error = h('p', { class: 'field-error', id: 'target-error' });
  const button = h('button', { type: 'submit', id: 'copy-link', class: 'secondary' }, 'Copy tracked link');
  const status = h('p', { class: 'status', role: 'status', id: 'link-status' });
  const out = h('pre', { class: 'code', id: 'link-url', hidden: true, tabindex: '0', 'aria-label': 'The tracked link' });
  const form = h('form', { class: 'card creator', id: 'link-form', novalidate: true, 'aria-labelledby': 'link-title' },
    h('h2', { id: 'link-title' }, 'Track a link'),
    h('p', { class: 'help', id: 'target-help' }, 'For the campaign and recipient above: a signed address that records the click and sends the reader on to the destination. It leads nowhere else.'),
    h('div', { class: 'field' }, h('label', { for: 'target' }, 'Destination'), target, error),
    h('div', { class: 'actions' }, button), status, out);
  let touched = false;
  const check = () => {
    const problem = targetProblem(target.value);
    error.textContent = touched ? problem : '';
    target.setAttribute('aria-invalid', touched && problem ? 'true' : 'false');
    return !problem;
  };
  let made = null; // the destination of the link shown below
  // The message and the link below speak of the last link made: once the destination
  // changes they would describe another address, so they go.
  const forget = () => {
    if (made !== null && target.value === made) return;
    status.textContent = '';
    status.dataset.state = '';
    out.hidden = true;
    clear(out);
    made = null;
  };
  target.addEventListener('input', () => {
    touched = touched || target.value !== '';
    check();
    forget();
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    touched = true;
    const { campaign, recipient, ok } = ids();
    if (!check()) {
      forget();
      target.focus();
      return;
    }
    if (!ok) {
      status.dataset.state = 'bad';
      status.textContent = 'Fix the campaign ID and recipient above first.';
      return;
    }
    button.disabled = true;
    status.dataset.state = '';
    try {
      const pending = api('/links', { method: 'POST', body: { campaign, recipient, target: target.value } });
      let copied = false;
      try {
        copied = await copyRichText(pending.then((r) => r.url));
      } catch {
        copied = false;
      }
      const { url } = await pending;
      made = target.value;
      out.hidden = false;
      clear(out).append(h('code', {}, url));
      status.dataset.state = copied ? 'good' : 'bad';
      status.textContent = copied ? 'Tracked link copied.' : 'Copy it from below.';
    } catch (err) {
      out.hidden = true;
      clear(out);
      made = null;
      status.dataset.state = 'bad';
      status.textContent = `Could not make the link: ${err.message}`;
    }
    button.disabled = false;
  });
  return form;
}

/** TEXT safe inside a double-quoted HTML attribute. */
export function attr(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

const IMAGE_TYPES = ['image/png', 'image/gif', 'image/jpeg', 'image/webp'];
const IMAGE_MAX = 8 * 1024 * 1024;

/**
 * Any image as a tracker: uploaded for the campaign and recipient above, previewed from the
 * file itself (the tracked address is never loaded here: that would be a view), with its
 * snippet to copy as for a pixel.
 */
function imageForm(ids) {
  const file = h('input', { type: 'file', id: 'image-file', name: 'image', accept: IMAGE_TYPES.join(','), 'aria-describedby': 'image-help image-error' });
  const alt = h('input', { id: 'image-alt', name: 'alt', autocomplete: 'off', placeholder: 'Our spring logo', maxlength: 200 });
  const error = h('p', { class: 'field-error', id: 'image-error' });
  const preview = h('img', { id: 'image-preview', class: 'image-preview', alt: 'Preview of the chosen image', hidden: true });
  const button = h('button', { type: 'submit', id: 'upload-image', class: 'secondary', disabled: true }, 'Upload and copy');
  const status = h('p', { class: 'status', role: 'status', id: 'image-status' });
  const result = h('div', { id: 'image-result', hidden: true });
  const form = h('form', { class: 'card creator', id: 'image-form', novalidate: true, 'aria-labelledby': 'image-title' },
    h('h2', { id: 'image-title' }, 'Use an image as a tracker'),
    h('p', { class: 'help', id: 'image-help' }, 'A logo or a banner (PNG, GIF, JPEG or WebP, up to 8 MB) for the campaign and recipient above: every load of it counts as an open. Without a recipient, one image serves everyone and counts visitors.'),
    h('div', { class: 'field' }, h('label', { for: 'image-file' }, 'Image'), file, error),
    preview,
    h('div', { class: 'field' }, h('label', { for: 'image-alt' }, 'Alternative text', h('span', { class: 'muted' }, ' (optional)')), alt),
    h('div', { class: 'actions' }, button), status, result);
  let size = null;
  file.addEventListener('change', () => {
    const f = file.files && file.files[0];
    clear(result);
    result.hidden = true;
    status.textContent = '';
    preview.hidden = true;
    size = null;
    error.textContent = '';
    file.setAttribute('aria-invalid', 'false');
    button.disabled = true;
    if (!f) return;
    const problem = !IMAGE_TYPES.includes(f.type) ? 'Not a PNG, GIF, JPEG or WebP image.'
      : f.size > IMAGE_MAX ? 'Too large: at most 8 MB.' : '';
    if (problem) {
      error.textContent = problem;
      file.setAttribute('aria-invalid', 'true');
      return;
    }
    const reader = new FileReader();
    reader.addEventListener('load', () => {
      preview.addEventListener('load', () => {
        size = { w: preview.naturalWidth, h: preview.naturalHeight };
      }, { once: true });
      preview.src = String(reader.result); // a data: URL of the file, not the tracker
      preview.hidden = false;
      button.disabled = false;
    });
    reader.readAsDataURL(f);
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = file.files && file.files[0];
    const { campaign, recipient, ok } = ids();
    if (!f) {
      error.textContent = 'Choose an image first.';
      file.focus();
      return;
    }
    if (!ok) {
      status.dataset.state = 'bad';
      status.textContent = 'Fix the campaign ID and recipient above first.';
      return;
    }
    button.disabled = true;
    status.dataset.state = '';
    status.textContent = 'Uploading…';
    const q = new URLSearchParams({ campaign });
    if (recipient) q.set('recipient', recipient);
    const pending = api(`/images?${q}`, { method: 'POST', raw: f, type: f.type });
    const htmlOf = (r) => `<img src="${attr(r.url)}" alt="${attr(alt.value)}"${size ? ` width="${size.w}" height="${size.h}"` : ''}>`;
    let copied = false;
    try {
      copied = await copyRich(pending.then(htmlOf));
    } catch {
      copied = false;
    }
    try {
      const r = await pending;
      const html = htmlOf(r);
      const copyHtml = h('button', { type: 'button', class: 'secondary', id: 'copy-image-html' }, 'Copy HTML as text');
      const note = h('span', { class: 'muted small', role: 'status' });
      copyHtml.addEventListener('click', async () => {
        note.textContent = (await copyText(html)) ? 'HTML copied as text.' : 'Copy failed: select the text.';
      });
      clear(result).append(
        h('p', {}, 'Campaign ', h('strong', {}, campaign), recipient ? [' · recipient ', h('strong', {}, recipient)] : ' · no recipient',
          ' · ', h('a', { href: campaignHref(campaign) }, 'see its opens')),
        h('pre', { class: 'code', id: 'image-html', tabindex: '0', 'aria-label': 'The image as HTML' }, h('code', {}, html)),
        h('div', { class: 'actions' }, copyHtml, note));
      result.hidden = false;
      status.dataset.state = copied ? 'good' : 'bad';
      status.textContent = copied ? 'Uploaded and copied. Paste it into your email.' : 'Uploaded. The browser did not let the page copy: copy the HTML below.';
    } catch (err) {
      status.dataset.state = 'bad';
      status.textContent = `Could not upload the image: ${err.message}`;
    }
    button.disabled = false;
  });
  return form;
}

/** Plain text on the clipboard; TEXT may be a promise (kept inside the click). */
async function copyRichText(textPromise) {
  if (navigator.clipboard && window.ClipboardItem) {
    const blob = Promise.resolve(textPromise).then((t) => new Blob([t], { type: 'text/plain' }));
    await navigator.clipboard.write([new ClipboardItem({ 'text/plain': blob })]);
    return true;
  }
  return copyText(await textPromise);
}

function showSnippet(section, { campaign, recipient }, { url, html }) {
  const copyHtml = h('button', { type: 'button', class: 'secondary', id: 'copy-html-text' }, 'Copy HTML as text');
  const copyUrl = h('button', { type: 'button', class: 'secondary', id: 'copy-url' }, 'Copy the address');
  const note = h('span', { class: 'muted small', role: 'status' });
  copyHtml.addEventListener('click', async () => {
    note.textContent = (await copyText(html)) ? 'HTML copied as text.' : 'Copy failed: select the text.';
  });
  copyUrl.addEventListener('click', async () => {
    note.textContent = (await copyText(url)) ? 'Address copied.' : 'Copy failed: select the text.';
  });

  const example = [
    '<html>',
    '  <body>',
    '    <p>Hello,</p>',
    '    <p>… your message …</p>',
    `    ${html}`,
    '  </body>',
    '</html>',
  ].join('\n');
  const qp = quotedPrintable(html);

  clear(section);
  section.hidden = false;
  section.append(
    h('h2', { id: 'snippet-title' }, 'Your pixel'),
    h('p', {}, 'Campaign ', h('strong', {}, campaign), recipient ? [' · recipient ', h('strong', {}, recipient)] : ' · no recipient',
      ' · ', h('a', { href: campaignHref(campaign) }, 'see its opens')),
    h('h3', {}, 'HTML'),
    h('pre', { class: 'code', id: 'snippet-html', tabindex: '0', 'aria-label': 'The pixel as HTML' }, h('code', {}, html)),
    h('div', { class: 'actions' }, copyHtml, copyUrl, note),
    h('h3', {}, 'Where to put it'),
    h('p', {}, 'At the very end of the email’s HTML body, just before ', h('code', {}, '</body>'),
      ': mail clients show the text first, and an image at the end never pushes it down. In a mail composer (Gmail, Outlook, Thunderbird), paste the copied pixel at the end of your message: it goes in as an invisible image.'),
    h('pre', { class: 'code', tabindex: '0', 'aria-label': 'Example placement' }, h('code', {}, example)),
    h('details', { class: 'more' },
      h('summary', {}, 'Address only, and quoted-printable for a raw MIME part'),
      h('p', {}, 'The image address:'),
      h('pre', { class: 'code', id: 'snippet-url', tabindex: '0' }, h('code', {}, url)),
      h('p', {}, 'The HTML in a part sent with ', h('code', {}, 'Content-Transfer-Encoding: quoted-printable'), ':'),
      h('pre', { class: 'code', tabindex: '0' }, h('code', {}, qp))),
    h('p', { class: 'muted small' }, 'Your own views (with this browser, or from this dashboard) are recorded as “self” and never counted.'));
}
