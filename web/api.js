// api: the dashboard's calls to /api/v1, with the session cookie and the CSRF header.
// SPDX-License-Identifier: MIT

let csrf = '';
let onUnauthorized = null;
let onBacklog = null;

export function setCsrf(token) {
  csrf = token || '';
}

/** Called when the session ends under us (any 401 outside /login and /me). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/**
 * Called after each read with the bytes of opens the server has answered but not yet
 * stored (its X-Index-Backlog-Bytes header; 0 when the answer is complete).
 */
export function setBacklogHandler(fn) {
  onBacklog = fn;
}

export class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/**
 * Calls /api/v1PATH. BODY goes as JSON; RAW (a string or Blob) goes as it is, with TYPE as its
 * Content-Type (a CSV list, an image).
 */
export async function api(path, { method = 'GET', body, raw, type, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (raw !== undefined) headers['Content-Type'] = type || 'application/octet-stream';
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrf;
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'The server cannot be reached.');
  }
  if (res.ok && method === 'GET' && onBacklog) {
    const behind = Number.parseInt(res.headers.get('X-Index-Backlog-Bytes') || '0', 10);
    onBacklog(Number.isFinite(behind) && behind > 0 ? behind : 0);
  }
  if (res.status === 204) return null;
  let data = null;
  if ((res.headers.get('Content-Type') || '').includes('json')) data = await res.json().catch(() => null);
  if (!res.ok) {
    const msg = (data && typeof data.error === 'string' && data.error) || `HTTP ${res.status}`;
    const retry = Number.parseInt(res.headers.get('Retry-After') || '', 10);
    if (res.status === 401 && path !== '/login' && path !== '/me' && onUnauthorized) onUnauthorized();
    throw new ApiError(res.status, msg, Number.isFinite(retry) ? retry : null);
  }
  return data;
}

export const enc = encodeURIComponent;
