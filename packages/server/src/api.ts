/**
 * The HTTP API: tickets, health, metrics, the authenticator's own routes (identity/), and the chat page.
 * Every error is JSON `{"error": {"code", "message"}}` with a code from @parley/protocol.
 */
import { readFile } from 'node:fs/promises';
import { type IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';
import type { Logger } from 'pino';
import { isStorableText, MAX_ROOMS_PAGE, MAX_TITLE_LENGTH, type MemberInfo, type MembersPage, roomKey, type RoomsPage } from '@parley/protocol';
import type { Config } from './config.js';
import { type PageQuery, wireMembership, wireMute } from './store/membership.js';
import { PoolFullError } from './auth/hashpool.js';
import { DriverError } from './driver.js';
import { unknownToken } from './identity/accounts.js';
import type { Authenticator } from './identity/identity.js';
import { errorBody, HttpError } from './http/errors.js';
import { answerMetrics, type Metrics } from './metrics.js';
import { bearer, clientAddress, malformedRequest, readJson, requestTarget } from './http/request.js';
import type { UserRateLimit } from './ratelimit/index.js';
import type { Tickets } from './tickets/index.js';
import { StoreError, type Store } from './store/store.js';


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

/** Most memberships GET /rooms lists as `mine`. */
export const MAX_LISTED_MEMBERSHIPS = 1000;
/** Page size of GET /rooms and GET /rooms/{room}/members when `limit` is absent. */
export const DEFAULT_ROOMS_PAGE = 50;

/** `after` and `limit` of a paged GET, or 400. */
function pageOf(params: URLSearchParams): PageQuery {
  const rawLimit = params.get('limit');
  const limit = rawLimit === null ? DEFAULT_ROOMS_PAGE : Number(rawLimit);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_ROOMS_PAGE) throw new HttpError('bad_request', `limit is an integer from 1 to ${MAX_ROOMS_PAGE}.`);
  const after = params.get('after') ?? undefined;
  if (after !== undefined && after.length > 128) throw new HttpError('bad_request', 'after is the `next` of a previous page.');
  return { after: after?.toLowerCase(), limit };
}

const SECURITY_HEADERS: Record<string, string> = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Content-Security-Policy': "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
};

export interface ApiDeps {
  config: Config;
  store: Store;
  /** Who a bearer credential belongs to, and the authenticator's own routes (see identity/). */
  auth: Authenticator;
  tickets: Tickets;
  /** Per-session ticket limit (and, in the hub, per-user messages). */
  rateLimit: UserRateLimit;
  /** Readiness of every driver but the store (broker, presence, tickets…): name → healthy. */
  health: () => Record<string, boolean>;
  log: Logger;
  /** Directory of the chat page's static files. */
  webRoot: string;
  /** Whether the server is shutting down (then /readyz answers 503). */
  isClosing: () => boolean;
  /** Served at GET /metrics; undefined: not on this port (metricsOnMainPort false), 404. */
  metrics: Metrics | undefined;
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

  /**
   * Responses not finished yet per socket (pipelined requests are answered one after the other),
   * and what to do once the last of them is (see afterResponses).
   */
  private readonly inFlight = new WeakMap<object, { open: number; then: (() => void) | undefined }>();

  /**
   * Runs `fn` once every response to the requests already read from `socket` has been sent: a
   * request the parser refuses in the middle of a pipeline is answered after those before it,
   * never in the middle of them (it overtook them, and their answers were lost). The first
   * call wins: the parser may report the same error again on later data.
   */
  afterResponses(socket: object, fn: () => void): void {
    const entry = this.inFlight.get(socket);
    if (entry === undefined || entry.open === 0) return fn();
    entry.then ??= fn;
  }

  private track(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    let entry = this.inFlight.get(socket);
    if (entry === undefined) this.inFlight.set(socket, (entry = { open: 0, then: undefined }));
    const e = entry;
    e.open++;
    // 'close': the response finished, or its connection went away before it could.
    res.once('close', () => {
      if (--e.open > 0 || e.then === undefined) return;
      const then = e.then;
      e.then = undefined;
      then();
    });
  }

  /**
   * 'checkExpectation' of the HTTP server: an `Expect` other than 100-continue (which Node
   * answers itself) is 417 with a JSON error like every other refusal (Node's own 417 has no
   * body and no nosniff).
   */
  expectationFailed = (req: IncomingMessage, res: ServerResponse): void => {
    this.track(req, res);
    this.send(res, 417, errorBody('expectation_failed', `Expect: ${String(req.headers.expect).slice(0, 100)} is not supported; the only expectation is 100-continue.`));
  };

  handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.track(req, res);
    this.route(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) {
        this.send(res, err.status, errorBody(err.code, err.message), err.headers);
      } else if (err instanceof PoolFullError) {
        this.d.log.warn({ url: req.url }, 'password checks backlogged; refusing');
        this.send(res, 503, errorBody('unavailable', 'Too many password checks are waiting; retry shortly.'), { 'Retry-After': '1' });
      } else if (err instanceof StoreError && err.code === 'invalid') {
        this.send(res, 400, errorBody('bad_request', 'The store cannot keep a value of this request.'));
      } else if (err instanceof StoreError && err.code === 'unavailable') {
        // A store that cannot write reports that itself (drivers.ts), not once per request.
        if (err.backend !== undefined) this.d.log.debug({ url: req.url, reason: err.backend }, `store unavailable: ${err.message}`);
        else this.d.log.warn({ err, url: req.url }, 'store unavailable');
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
      case '/metrics': {
        const metrics = this.d.metrics;
        if (metrics === undefined) throw new HttpError('not_found');
        get();
        return answerMetrics(metrics, req, res);
      }
      case '/ticket':
        return post(() => this.ticket(req));
      case '/ws':
        throw new HttpError('bad_request', 'GET /ws must be a WebSocket upgrade request.');
      case '/rooms':
        get();
        return this.json(res, 200, await this.roomList(req, url.searchParams));
      default: {
        const members = /^\/rooms\/([^/]+)\/members$/.exec(path);
        if (members !== null) {
          get();
          return this.json(res, 200, await this.memberList(req, members[1] ?? '', url.searchParams));
        }
        const route = Object.hasOwn(this.d.auth.routes, path) ? this.d.auth.routes[path] : undefined;
        if (route !== undefined) {
          return post(() => route({ req, ip: clientAddress(req, this.d.config.trustProxy), json: () => readJson(req, this.bodies.get(req)) }));
        }
        if (method !== 'GET' && method !== 'HEAD') throw new HttpError('not_found');
        return this.staticFile(path, method, res);
      }
    }
  }

  /**
   * 200 when this node can serve: not shutting down, its store can write (store/health.ts) and
   * answers a round trip, its other drivers are connected. A store that is down says which
   * driver and why: `{"status":"unavailable","store":"down","driver":"sqlite","reason":"SQLITE_FULL"}`.
   * The store's outage is logged by drivers.ts, not here (a load balancer asks every few seconds).
   */
  private async ready(res: ServerResponse): Promise<void> {
    if (this.d.isClosing()) return this.json(res, 503, { status: 'closing' });
    const store = this.d.store;
    let reason = store.failure?.reason;
    if (reason === undefined) {
      try {
        await store.ping();
        if (!store.healthy) reason = store.failure?.reason ?? 'closed';
      } catch (err) {
        reason = store.failure?.reason ?? (err instanceof StoreError ? err.backend : undefined) ?? 'unavailable';
      }
    }
    const checks: Record<string, string> = reason === undefined ? { store: 'up' } : { store: 'down', driver: store.driver, reason };
    let ready = reason === undefined;
    for (const [name, ok] of Object.entries(this.d.health())) {
      checks[name] = ok ? 'up' : 'down';
      ready &&= ok;
    }
    return this.json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'unavailable', ...checks });
  }

  // -------------------------------------------------------------------------------------------
  // Tickets

  /**
   * A fresh ticket for the identity the bearer credential proves (see identity/), at most
   * ticketRateLimitPerMin per session and minute (on every node, with Redis).
   */
  private async ticket(req: IncomingMessage): Promise<[number, unknown]> {
    const identity = await this.d.auth.identify(bearer(req, this.d.auth.credential));
    if (identity === undefined) throw unknownToken();
    const perMin = this.d.config.ticketRateLimitPerMin;
    if (perMin > 0 && !(await this.d.rateLimit.hit(`ticket:${identity.session}`, perMin, 60_000))) {
      const wait = 60_000 - (Date.now() % 60_000);
      throw new HttpError('rate_limited', `At most ${perMin} tickets per minute per session.`, { 'Retry-After': String(Math.ceil(wait / 1000)) });
    }
    return [200, { otp: await this.d.tickets.issue(identity) }];
  }

  // -------------------------------------------------------------------------------------------
  // Rooms

  /** The caller's user name (the bearer credential), or 401. */
  private async caller(req: IncomingMessage): Promise<string> {
    const identity = await this.d.auth.identify(bearer(req, this.d.auth.credential));
    if (identity === undefined) throw unknownToken();
    return identity.user;
  }

  /** GET /rooms: a page of public rooms (by name; `q` searches names and titles), and every membership of the caller. */
  private async roomList(req: IncomingMessage, params: URLSearchParams): Promise<RoomsPage> {
    const user = await this.caller(req);
    const page = pageOf(params);
    const q = params.get('q') ?? undefined;
    if (q !== undefined && (q.length > MAX_TITLE_LENGTH || !isStorableText(q))) throw new HttpError('bad_request', `q is at most ${MAX_TITLE_LENGTH} characters of text.`);
    const rooms = await this.d.store.publicRooms(q === '' ? undefined : q, page);
    const mine = await this.d.store.membershipsOf(user, MAX_LISTED_MEMBERSHIPS);
    const now = Date.now();
    const next = rooms.length === page.limit ? rooms.at(-1)?.room : undefined;
    const body: RoomsPage = { rooms, mine: mine.map((m) => wireMembership(m, now)) };
    if (next !== undefined) body.next = next;
    return body;
  }

  /** GET /rooms/{room}/members: for members only; for anyone else the one 403, as for a room that does not exist. */
  private async memberList(req: IncomingMessage, raw: string, params: URLSearchParams): Promise<MembersPage> {
    const user = await this.caller(req);
    let decoded: string;
    try {
      decoded = decodeURIComponent(raw);
    } catch {
      throw new HttpError('forbidden');
    }
    const room = roomKey(decoded);
    const page = pageOf(params);
    const access = room === undefined ? undefined : (await this.d.store.roomsAccess(user, [room])).get(room);
    if (room === undefined || access?.member === undefined) throw new HttpError('forbidden');
    const now = Date.now();
    const members = (await this.d.store.roomMembers(room, page)).map((m) => {
      const out: MemberInfo = { user: m.user, role: m.role };
      const muted = wireMute(m.mutedUntil, now);
      if (muted !== undefined) out.muted = muted;
      return out;
    });
    const next = members.length === page.limit ? members.at(-1)?.user.toLowerCase() : undefined;
    const body: MembersPage = { room, members };
    if (next !== undefined) body.next = next;
    return body;
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
