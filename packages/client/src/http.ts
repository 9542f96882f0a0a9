/** The SDK's HTTP side: base URLs, and JSON POSTs whose error bodies become ParleyErrors. */
import { isHttpErrorCode } from '@parley/protocol';
import { ParleyError, type ParleyErrorCode } from './errors.js';

const HTTP_TIMEOUT_MS = 20_000;

/** Resolves a base URL (relative ones against the page's location). */
export function baseUrl(url: string): string {
  const here = typeof location === 'undefined' ? undefined : location?.href;
  const u = here === undefined ? new URL(url) : new URL(url, here);
  if (!/^(https?|wss?):$/.test(u.protocol)) throw new TypeError(`Parley URL must be http(s): ${url}`);
  u.search = '';
  u.hash = '';
  return u.toString().replace(/\/+$/, '');
}

function httpUrl(base: string, path: string): string {
  return base.replace(/^ws/, 'http') + path;
}

export function socketUrl(base: string, otp: string): string {
  return `${base.replace(/^http/, 'ws')}/ws?otp=${encodeURIComponent(otp)}&resume=1`;
}

/** `given`, else the global fetch, wrapped so that it is never called as a method of an object. */
export function fetchOf(given: typeof fetch | undefined, who: string, option: string): typeof fetch {
  const f = given ?? (typeof fetch === 'undefined' ? undefined : fetch);
  if (f === undefined) throw new TypeError(`${who}: no global fetch; pass ${option}`);
  return (input, init) => f(input, init);
}

/** The `{error: {code, message}}` of an HTTP error body, as far as it is there. */
function errorOf(json: unknown): { code?: unknown; message?: unknown } | undefined {
  if (typeof json !== 'object' || json === null || !('error' in json)) return undefined;
  const error = json.error;
  if (typeof error !== 'object' || error === null) return undefined;
  return { code: 'code' in error ? error.code : undefined, message: 'message' in error ? error.message : undefined };
}

/** Retry-After in ms (delay-seconds only), when the header holds one. */
function retryAfterMs(res: Response): number | undefined {
  const raw = res.headers?.get('retry-after') ?? null;
  if (raw === null || !/^\d+$/.test(raw.trim())) return undefined;
  return Number(raw.trim()) * 1000;
}

/** POSTs `body` as JSON (with the bearer token, if given); resolves with the JSON answer, rejects with ParleyError. */
export function post(fetchImpl: typeof fetch, base: string, path: string, body: unknown, token?: string): Promise<unknown> {
  return request(fetchImpl, 'POST', base, path, body, token);
}

/** GETs `path` with the bearer token; resolves with the JSON answer, rejects with ParleyError. */
export function get(fetchImpl: typeof fetch, base: string, path: string, token: string): Promise<unknown> {
  return request(fetchImpl, 'GET', base, path, undefined, token);
}

async function request(fetchImpl: typeof fetch, method: 'GET' | 'POST', base: string, path: string, body: unknown, token: string | undefined): Promise<unknown> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = JSON.stringify(body);
  if (typeof AbortSignal !== 'undefined' && typeof AbortSignal.timeout === 'function') init.signal = AbortSignal.timeout(HTTP_TIMEOUT_MS);
  let res: Response;
  try {
    res = await fetchImpl(httpUrl(base, path), init);
  } catch (err) {
    throw new ParleyError('network', `${method} ${path} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  let json: unknown;
  try {
    json = await res.json();
  } catch {
    json = undefined;
  }
  if (res.ok) return json;
  const error = errorOf(json);
  const code: ParleyErrorCode = isHttpErrorCode(error?.code) ? error.code : res.status >= 500 ? 'unavailable' : 'network';
  const message = typeof error?.message === 'string' ? error.message : `${method} ${path} answered ${res.status}`;
  const wait = retryAfterMs(res);
  throw new ParleyError(code, message, wait === undefined ? { status: res.status } : { status: res.status, retryAfterMs: wait });
}

/** The string field `key` of a JSON answer, if it is one. */
export function stringField(json: unknown, key: string): string | undefined {
  if (typeof json !== 'object' || json === null || !(key in json)) return undefined;
  const value: unknown = Reflect.get(json, key);
  return typeof value === 'string' ? value : undefined;
}
