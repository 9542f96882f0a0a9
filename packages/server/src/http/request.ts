/** Reading a request without trusting it: its target, its framing, its address, its body, its bearer token. */
import type { IncomingMessage } from 'node:http';
import { HttpError } from './errors.js';

/** Largest JSON body accepted by the API routes. */
export const MAX_BODY_BYTES = 16 * 1024;

/**
 * The request target as a URL, or undefined when it is not one: `new URL` throws on targets such
 * as `http://a:99999/` or `http://[/` (absolute-form with a bad port or host), and a throw in a
 * request or upgrade listener would take the process down. Origin-form (`/path?query`),
 * absolute-form and `*` are all read relative to a dummy base; only the path and query are used.
 */
export function requestTarget(raw: string | undefined): URL | undefined {
  try {
    return new URL(raw ?? '/', 'http://x');
  } catch {
    return undefined;
  }
}

/**
 * Why a request that Node's parser let through is still not one to serve, or undefined: an
 * HTTP version other than 1.x (a bare `GET /` is HTTP/0.9), or more than one Host header (RFC
 * 9112 §3.2: a server must answer 400).
 */
export function malformedRequest(req: IncomingMessage): string | undefined {
  if (req.httpVersionMajor !== 1) return 'Parley speaks HTTP/1.0 and HTTP/1.1.';
  let hosts = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]?.toLowerCase() === 'host') hosts++;
  if (hosts > 1) return 'A request has one Host header.';
  return undefined;
}

/** `application/json`, with or without parameters (`; charset=utf-8`); not `application/jsonx`. */
export const isJsonType = (type: string | undefined): boolean => type !== undefined && (type.split(';', 1)[0] ?? '').trim().toLowerCase() === 'application/json';

/** Whether the request carries a body (a non-zero Content-Length, or chunked). */
export const hasBody = (req: IncomingMessage): boolean => req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** A request body that must be a JSON object. */
export function parseObject(body: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError('bad_request', 'The body is not valid JSON.');
  }
  if (!isObject(parsed)) throw new HttpError('bad_request', 'The body must be a JSON object.');
  return parsed;
}

/**
 * The client's address: the TCP peer; behind a trusted proxy (trustProxy), the last
 * X-Forwarded-For entry, the one the proxy itself appended. Entries before it were sent by the
 * client and prove nothing (nginx's $proxy_add_x_forwarded_for, HAProxy's forwardfor and cloud
 * load balancers append to what the client sent).
 */
export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const xff = req.headers['x-forwarded-for'];
    const last = (Array.isArray(xff) ? xff.join(',') : xff)?.split(',').at(-1)?.trim();
    if (last !== undefined && last.length > 0) return last;
  }
  return req.socket.remoteAddress ?? 'unknown';
}

/**
 * The request's JSON object body (415 unless exactly application/json, 413 past MAX_BODY_BYTES,
 * 400 when cut off or not an object). `given`: a body already read (an ignored Upgrade's head).
 */
export async function readJson(req: IncomingMessage, given?: Buffer): Promise<Record<string, unknown>> {
  if (!isJsonType(req.headers['content-type'])) throw new HttpError('unsupported_media_type');
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) {
    req.resume();
    throw new HttpError('payload_too_large');
  }
  if (given !== undefined) {
    if (given.length !== declared) throw new HttpError('bad_request', 'The request body was cut off.');
    return parseObject(given);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      if (!Buffer.isBuffer(chunk)) throw new HttpError('bad_request', 'The request body was cut off.');
      size += chunk.length;
      if (size > MAX_BODY_BYTES) throw new HttpError('payload_too_large');
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof HttpError) throw err;
    // The client went away mid-body, or the body broke HTTP's framing (the parser then closes
    // the socket): nobody is left to answer, and it is not a server failure.
    throw new HttpError('bad_request', 'The request body was cut off.');
  }
  return parseObject(Buffer.concat(chunks));
}

/**
 * The bearer credential of a request that takes no body (`Authorization: Bearer <credential>`,
 * the scheme in any case, RFC 9110 §11.1), or 401. A body sent anyway is drained (keep-alive
 * connections stay usable), and must still be JSON, as every body is.
 */
export function bearer(req: IncomingMessage, pattern: RegExp): string {
  const header = req.headers.authorization;
  const m = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  const credential = m?.[1];
  if (credential === undefined || !pattern.test(credential)) throw new HttpError('unauthorized', undefined, { 'WWW-Authenticate': 'Bearer' });
  if (hasBody(req) && !isJsonType(req.headers['content-type'])) throw new HttpError('unsupported_media_type');
  req.resume();
  return credential;
}
