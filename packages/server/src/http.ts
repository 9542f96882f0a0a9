/**
 * HTTP routes: accounts, tokens and tickets, health, and the chat page.
 * Every error is JSON `{"error": {"code", "message"}}` with a code from @parley/protocol.
 */
import { readFile } from 'node:fs/promises';
import { type IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';
import type { Logger } from 'pino';
import {
  type HttpErrorBody,
  type HttpErrorCode,
  HttpErrorCodes,
  MAX_PASSWORD_LENGTH,
  MIN_PASSWORD_LENGTH,
  normalizeUserName,
} from '@parley/protocol';
import type { Config } from './config.js';
import type { Hub } from './hub.js';
import { type HashPool, PoolFullError } from './auth/hashpool.js';
import { dummyHash, normalizePassword } from './auth/password.js';
import { DriverError } from './driver.js';
import type { UserRateLimit } from './ratelimit/index.js';
import type { Throttle, ThrottlePolicy } from './throttle/index.js';
import { newSecret, sha256 } from './auth/tokens.js';
import type { Tickets } from './tickets/index.js';
import { StoreError, type Store, type UserRecord } from './store/store.js';

/** Largest JSON body accepted by the API routes. */
const MAX_BODY_BYTES = 16 * 1024;
/** Login attempts from one address may be this many times loginMaxFailures (shared NATs). */
const IP_FAILURE_FACTOR = 4;
/** The first throttle delay, once an attempt's free allowance is used; it doubles from there. */
const THROTTLE_BASE_MS = 1000;

/** `free` attempts, then delays doubling from THROTTLE_BASE_MS up to the window, which a key is remembered for. */
const throttlePolicy = (free: number, windowMs: number): ThrottlePolicy => ({ free, windowMs, baseMs: THROTTLE_BASE_MS, maxMs: windowMs });

/** 429 too_many_attempts with Retry-After (whole seconds, at least 1). */
const tooManyAttempts = (waitMs: number, message: string): HttpError =>
  new HttpError('too_many_attempts', message, { 'Retry-After': String(Math.max(1, Math.ceil(waitMs / 1000))) });

export class HttpError extends Error {
  readonly status: number;
  constructor(
    readonly code: HttpErrorCode,
    message: string = HttpErrorCodes[code][1],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.status = HttpErrorCodes[code][0];
  }
}

export function errorBody(code: HttpErrorCode, message: string = HttpErrorCodes[code][1]): string {
  const body: HttpErrorBody = { error: { code, message } };
  return JSON.stringify(body);
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.webmanifest': 'application/manifest+json',
};

const SECURITY_HEADERS: Record<string, string> = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Content-Security-Policy': "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
};

export interface ApiDeps {
  config: Config;
  store: Store;
  hub: Hub;
  tickets: Tickets;
  /** Login and sign-up attempts (see throttle/throttle.ts). */
  throttle: Throttle;
  /** Per-session ticket limit (and, in the hub, per-user messages). */
  rateLimit: UserRateLimit;
  /** Every password hash and check goes through it (bounded, logins first). */
  hashes: HashPool;
  /** Readiness of every driver but the store (broker, presence, tickets…): name → healthy. */
  health: () => Record<string, boolean>;
  log: Logger;
  /** Directory of the chat page's static files. */
  webRoot: string;
  /** Whether the server is shutting down (then /readyz answers 503). */
  isClosing: () => boolean;
}

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
  for (let i = 0; i < req.rawHeaders.length; i += 2) if ((req.rawHeaders[i] as string).toLowerCase() === 'host') hosts++;
  if (hosts > 1) return 'A request has one Host header.';
  return undefined;
}

/** `application/json`, with or without parameters (`; charset=utf-8`); not `application/jsonx`. */
const isJsonType = (type: string | undefined): boolean => type !== undefined && (type.split(';', 1)[0] as string).trim().toLowerCase() === 'application/json';

/** Whether the request carries a body (a non-zero Content-Length, or chunked). */
const hasBody = (req: IncomingMessage): boolean => req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;

/** A request body that must be a JSON object. */
function parseObject(body: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError('bad_request', 'The body is not valid JSON.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new HttpError('bad_request', 'The body must be a JSON object.');
  return parsed as Record<string, unknown>;
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

export class Api {
  constructor(private readonly d: ApiDeps) {}

  /** The request listener. Never throws; every failure becomes a JSON error. */
  /**
   * A request that asked to upgrade to something other than WebSocket (`Upgrade: h2c` from
   * `curl --http2`): the Upgrade is ignored (RFC 9110 §7.8) and the request is served as plain
   * HTTP/1.1 on its socket, which is closed after the response. Node hands such a request over
   * with its body already read into `head`.
   */
  serveIgnoringUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    this.bodies.set(req, head);
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket);
    res.on('finish', () => {
      res.detachSocket(socket);
      socket.destroySoon();
    });
    this.handle(req, res);
  }

  /** Bodies of requests served by serveIgnoringUpgrade (their stream is empty). */
  private readonly bodies = new WeakMap<IncomingMessage, Buffer>();

  handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.route(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) {
        this.send(res, err.status, errorBody(err.code, err.message), err.headers);
      } else if (err instanceof PoolFullError) {
        this.d.log.warn({ url: req.url }, 'password checks backlogged; refusing');
        this.send(res, 503, errorBody('unavailable', 'Too many password checks are waiting; retry shortly.'), { 'Retry-After': '1' });
      } else if (err instanceof StoreError && err.code === 'invalid') {
        this.send(res, 400, errorBody('bad_request', 'The store cannot keep a value of this request.'));
      } else if (err instanceof StoreError && err.code === 'unavailable') {
        this.d.log.warn({ err, url: req.url }, 'store unavailable');
        this.send(res, 503, errorBody('unavailable'));
      } else if (err instanceof DriverError && err.code === 'unavailable') {
        this.d.log.warn({ err, url: req.url }, `${err.concern} unavailable`);
        this.send(res, 503, errorBody('unavailable'));
      } else {
        this.d.log.error({ err, url: req.url }, 'request failed');
        this.send(res, 500, errorBody('internal'));
      }
    });
  };

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const malformed = malformedRequest(req);
    if (malformed !== undefined) throw new HttpError('bad_request', malformed);
    const url = requestTarget(req.url);
    if (url === undefined) throw new HttpError('bad_request', 'The request target is not a valid URL.');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const get = () => {
      if (method !== 'GET' && method !== 'HEAD') throw new HttpError('method_not_allowed', `Use GET ${path}.`, { Allow: 'GET, HEAD' });
    };
    const post = (fn: () => Promise<[number, unknown]>) => {
      if (method !== 'POST') throw new HttpError('method_not_allowed', `Use POST ${path}.`, { Allow: 'POST' });
      return fn().then(([status, body]) => this.json(res, status, body));
    };
    switch (path) {
      case '/healthz':
        get();
        return this.json(res, 200, { status: 'ok' });
      case '/readyz':
        get();
        return this.ready(res);
      case '/register':
        return post(() => this.register(req));
      case '/login':
        return post(() => this.login(req));
      case '/ticket':
        return post(() => this.ticket(req));
      case '/logout':
        return post(() => this.logout(req));
      case '/ws':
        throw new HttpError('bad_request', 'GET /ws must be a WebSocket upgrade request.');
      default:
        if (method !== 'GET' && method !== 'HEAD') throw new HttpError('not_found');
        return this.staticFile(path, method, res);
    }
  }

  /** 200 when this node can serve: not shutting down, its store answers, its broker is connected. */
  private async ready(res: ServerResponse): Promise<void> {
    if (this.d.isClosing()) return this.json(res, 503, { status: 'closing' });
    const checks: Record<string, 'up' | 'down'> = {};
    try {
      await this.d.store.ping();
      checks.store = 'up';
    } catch (err) {
      this.d.log.warn({ err }, 'readiness: store unavailable');
      checks.store = 'down';
    }
    for (const [name, ok] of Object.entries(this.d.health())) checks[name] = ok ? 'up' : 'down';
    const ready = Object.values(checks).every((v) => v === 'up');
    return this.json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'unavailable', ...checks });
  }

  // -------------------------------------------------------------------------------------------
  // Accounts

  /**
   * Sign-up. Counted per address before anything is checked (so probing names counts too); a
   * taken (or removed, hence reserved) name is refused before any hashing; the hash waits for a
   * slot of the hash pool behind every login.
   */
  private async register(req: IncomingMessage): Promise<[number, unknown]> {
    const { config, store } = this.d;
    if (config.registration === 'closed') throw new HttpError('registration_closed');
    const { username, password } = await this.credentials(req);
    const ip = clientAddress(req, config.trustProxy);
    const wait = await this.d.throttle.attempt(`register:a:${ip}`, throttlePolicy(config.registerMaxPerAddress, config.registerWindowMs));
    if (wait > 0) throw tooManyAttempts(wait, 'Too many sign-ups from this address; retry after the Retry-After delay.');
    if (password.length < MIN_PASSWORD_LENGTH) throw new HttpError('weak_password');
    if (await store.nameTaken(username)) throw new HttpError('username_taken');
    try {
      await store.createUser(username, await this.d.hashes.hash(password));
    } catch (err) {
      if (err instanceof StoreError && err.code === 'conflict') throw new HttpError('username_taken');
      throw err;
    }
    this.d.log.info({ user: username, ip }, 'user registered');
    return [201, { user: { name: username } }];
  }

  /**
   * Login, throttled per user name + address and per address (OWASP): both counts are taken
   * before the password is checked, so concurrent guesses cannot slip past them, and a guesser
   * elsewhere can never lock the owner out. A success ends the delays of its name + address and
   * gives its attempt back to the address.
   */
  private async login(req: IncomingMessage): Promise<[number, unknown]> {
    const { config, store, tickets, throttle } = this.d;
    const { username, password, rawPassword } = await this.credentials(req);
    const ip = clientAddress(req, config.trustProxy);
    const addressKey = `login:a:${ip}`;
    const pairKey = `login:u:${username.toLowerCase()}:${ip}`;
    const addressWait = await throttle.attempt(addressKey, throttlePolicy(config.loginMaxFailures * IP_FAILURE_FACTOR, config.loginWindowMs));
    if (addressWait > 0) throw tooManyAttempts(addressWait, 'Too many login attempts from this address; retry after the Retry-After delay.');
    const pairWait = await throttle.attempt(pairKey, throttlePolicy(config.loginMaxFailures, config.loginWindowMs));
    if (pairWait > 0) {
      await throttle.refund(addressKey);
      throw tooManyAttempts(pairWait, 'Too many login attempts for this user from this address; retry after the Retry-After delay.');
    }

    let user: UserRecord | undefined;
    let ok: boolean;
    try {
      user = await store.getUser(username);
      const hash = user?.passwordHash ?? (await dummyHash());
      ok = await this.d.hashes.verify(password, hash);
      // Accounts made before passwords were normalized were hashed from the password as typed.
      if (!ok && user !== undefined && rawPassword !== password) ok = await this.d.hashes.verify(rawPassword, hash);
    } catch (err) {
      // Not the client's guess that failed: its attempts are given back.
      await Promise.all([throttle.refund(addressKey), throttle.refund(pairKey)]).catch(() => undefined);
      throw err;
    }
    if (user === undefined || !ok) {
      this.d.log.info({ user: username, ip }, 'login failed');
      throw new HttpError('invalid_credentials');
    }
    await Promise.all([throttle.reset(pairKey), throttle.refund(addressKey)]);
    const now = Date.now();
    const token = newSecret();
    const record = { tokenHash: sha256(token), user: user.name, expiresAt: now + config.tokenTtlMs };
    await store.createSession(record);
    const otp = await tickets.issue(record);
    return [200, { token, otp, user: { name: user.name }, expiresAt: new Date(now + config.tokenTtlMs).toISOString() }];
  }

  /** A fresh ticket, at most ticketRateLimitPerMin per session and minute (on every node, with Redis). */
  private async ticket(req: IncomingMessage): Promise<[number, unknown]> {
    const session = await this.authenticate(req);
    const perMin = this.d.config.ticketRateLimitPerMin;
    if (perMin > 0 && !(await this.d.rateLimit.hit(`ticket:${session.tokenHash}`, perMin, 60_000))) {
      const wait = 60_000 - (Date.now() % 60_000);
      throw new HttpError('rate_limited', `At most ${perMin} tickets per minute per session.`, { 'Retry-After': String(Math.ceil(wait / 1000)) });
    }
    return [200, { otp: await this.d.tickets.issue(session) }];
  }

  private async logout(req: IncomingMessage): Promise<[number, unknown]> {
    const session = await this.authenticate(req);
    await this.d.store.deleteSession(session.tokenHash);
    const closed = this.d.hub.revokeSession(session.tokenHash);
    this.d.log.info({ user: session.user, closed }, 'logout');
    return [200, { ok: true }];
  }

  private async authenticate(req: IncomingMessage) {
    const header = req.headers.authorization;
    // The scheme is case-insensitive (RFC 9110 §11.1): `bearer` is `Bearer`.
    const m = header === undefined ? null : /^Bearer\s+([A-Za-z0-9_-]{16,128})\s*$/i.exec(header);
    if (m === null) throw new HttpError('unauthorized', undefined, { 'WWW-Authenticate': 'Bearer' });
    // These routes take no body; one sent anyway is drained (keep-alive connections stay
    // usable), and must still be JSON, as every body is.
    if (hasBody(req) && !isJsonType(req.headers['content-type'])) throw new HttpError('unsupported_media_type');
    req.resume();
    const session = await this.d.store.getSession(sha256(m[1] as string), Date.now());
    if (session === undefined) throw new HttpError('unauthorized', 'The token is unknown, revoked or expired.', { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
    return session;
  }

  /** The body's credentials: the name normalized (NFKC), the password normalized (NFC) and as sent. */
  private async credentials(req: IncomingMessage): Promise<{ username: string; password: string; rawPassword: string }> {
    const body = await this.readJson(req);
    const { username: rawName, password: rawPassword } = body as { username?: unknown; password?: unknown };
    if (typeof rawName !== 'string' || typeof rawPassword !== 'string') {
      throw new HttpError('bad_request', 'The body must be {"username": string, "password": string}.');
    }
    const username = normalizeUserName(rawName);
    if (username === undefined) throw new HttpError('invalid_username');
    if (rawPassword.length > MAX_PASSWORD_LENGTH) throw new HttpError('bad_request', `Passwords are at most ${MAX_PASSWORD_LENGTH} characters.`);
    const password = normalizePassword(rawPassword);
    if (password === undefined) throw new HttpError('bad_request', 'The password is not valid Unicode text (it holds a lone surrogate).');
    return { username, password, rawPassword };
  }

  private async readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
    if (!isJsonType(req.headers['content-type'])) throw new HttpError('unsupported_media_type');
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      req.resume();
      throw new HttpError('payload_too_large');
    }
    const given = this.bodies.get(req);
    if (given !== undefined) {
      if (given.length !== declared) throw new HttpError('bad_request', 'The request body was cut off.');
      return parseObject(given);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of req as AsyncIterable<Buffer>) {
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

  // -------------------------------------------------------------------------------------------
  // Static files (the chat page)

  private async staticFile(path: string, method: string, res: ServerResponse): Promise<void> {
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      throw new HttpError('bad_request', 'The path is not valid percent-encoded UTF-8.');
    }
    const rel = path === '/' ? 'index.html' : decoded.replace(/^\/+/, '');
    const file = normalize(join(this.d.webRoot, rel));
    if (!file.startsWith(this.d.webRoot + sep) || rel.split('/').some((p) => p.startsWith('.'))) throw new HttpError('not_found');
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch {
      throw new HttpError('not_found');
    }
    const type = CONTENT_TYPES[extname(file)] ?? 'application/octet-stream';
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': type,
      'Content-Length': data.length,
      'Cache-Control': type.startsWith('text/html') ? 'no-cache' : 'public, max-age=300',
    });
    res.end(method === 'HEAD' ? undefined : data);
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    this.send(res, status, JSON.stringify(body));
  }

  private send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(status, {
      'Content-Type': 'application/json; charset=utf-8',
      'Cache-Control': 'no-store',
      'Content-Length': Buffer.byteLength(body),
      'X-Content-Type-Options': 'nosniff',
      ...headers,
    });
    res.end(body);
  }
}
