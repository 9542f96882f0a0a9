/**
 * The Parley server: HTTP + the WebSocket upgrade guard + the Hub, and their lifecycle.
 *
 *   const server = await startServer(loadConfig({ overrides: { port: 0 } }));
 *   ...
 *   await server.close();
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { CloseCodes, type HttpErrorCode, HttpErrorCodes } from '@parley/protocol';
import { HashPool } from './auth/hashpool.js';
import type { Broker } from './broker/index.js';
import type { Config } from './config.js';
import { createDrivers } from './drivers.js';
import { Connection, Flusher } from './connection.js';
import { Api, clientAddress, errorBody, malformedRequest, requestTarget } from './http.js';
import { Hub } from './hub.js';
import { RemovalWatcher } from './removals.js';
import { Retention } from './retention.js';
import { Tally } from './tally.js';
import type { Presence } from './presence/index.js';
import type { Store } from './store/store.js';

/** The chat page: the built packages/web/dist/public when it exists, else the plain packages/web/public (resolved from dist/src/server.js). */
const WEB_PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), '../../../web');
export const DEFAULT_WEB_ROOT = existsSync(resolve(WEB_PACKAGE, 'dist/public/index.html')) ? resolve(WEB_PACKAGE, 'dist/public') : resolve(WEB_PACKAGE, 'public');

/** Each socket carries its Connection, so one set of listeners serves every socket. */
const CONN = Symbol('parley.connection');
type Tagged = WebSocket & { [CONN]: Connection };
const connOf = (ws: WebSocket): Connection => (ws as Tagged)[CONN];

/**
 * How often the HTTP server looks for requests past headersTimeout (20 s) or requestTimeout
 * (30 s) and answers them 408 (Node's default, 30 s, let a stalled request live up to a minute).
 */
const HTTP_TIMEOUT_CHECK_MS = 1000;

/** Whether an upgrade asks for WebSocket (`Upgrade: websocket`, in any case). */
const wantsWebSocket = (req: IncomingMessage): boolean => req.headers.upgrade?.trim().toLowerCase() === 'websocket';

/** A Sec-WebSocket-Key: 16 bytes in base64 (RFC 6455 §4.1). */
const WEBSOCKET_KEY = /^[A-Za-z0-9+/]{22}==$/;

/** A complete HTTP response refusing a request with a JSON error; the connection is closed after it. */
function refusal(code: HttpErrorCode, message?: string, headers = ''): string {
  const [status] = HttpErrorCodes[code];
  const body = errorBody(code, message);
  return (
    `HTTP/1.1 ${status} ${code}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n${headers}Connection: close\r\n\r\n${body}`
  );
}

function destroySelf(this: Duplex): void {
  this.destroy();
}

export interface ServerOptions {
  logger?: Logger;
  /** Use this store instead of the one the config names (tests, embedding). */
  store?: Store;
  presence?: Presence;
  broker?: Broker;
  webRoot?: string;
}

export interface ParleyServer {
  readonly config: Config;
  readonly hub: Hub;
  readonly store: Store;
  readonly retention: Retention;
  readonly broker: Broker;
  readonly log: Logger;
  /** Every password hash and check of this server (how many ran, how many wait). */
  readonly hashes: HashPool;
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** http(s)://host:port of this server. */
  readonly url: string;
  /** Stops accepting, closes every client with 1001, flushes the store, closes it. */
  close(): Promise<void>;
}

export function createLogger(config: Pick<Config, 'logLevel'>): Logger {
  return pino({ level: config.logLevel, base: { service: 'parley' } });
}

export async function startServer(config: Config, options: ServerOptions = {}): Promise<ParleyServer> {
  const log = options.logger ?? createLogger(config);
  // Every driver the config names (shared state in Redis where it says so), opened store first.
  const drivers = createDrivers(config, options, log);
  const { store, tickets, throttle, broker, presence, rateLimiter: userLimit } = drivers;
  await drivers.init();
  const hashes = new HashPool();
  const retention = new Retention(config, store, log);
  const hub = new Hub(config, store, log, presence, broker, userLimit);
  broker.onMessage = (room, payload) => hub.fromBroker(room, payload);
  await hub.listen();
  broker.onHealth = (healthy) => {
    if (healthy) {
      log.info({ broker: broker.driver }, 'broker connected; reading what was missed from the store');
      hub.resync();
    } else {
      log.error({ broker: broker.driver }, 'broker connection lost; serving local clients only, reconnecting');
    }
  };
  const health = drivers.health;
  let closing = false;
  const api = new Api({ config, store, hub, tickets, throttle, rateLimit: userLimit, hashes, health, log, webRoot: resolve(options.webRoot ?? DEFAULT_WEB_ROOT), isClosing: () => closing });
  retention.start();
  const removals = new RemovalWatcher(store, hub, log);
  removals.start();

  const tls = config.tlsCert !== undefined && config.tlsKey !== undefined;
  const http: HttpServer = tls
    ? createHttpsServer({ cert: readFileSync(config.tlsCert as string), key: readFileSync(config.tlsKey as string), connectionsCheckingInterval: HTTP_TIMEOUT_CHECK_MS }, api.handle)
    : createHttpServer({ connectionsCheckingInterval: HTTP_TIMEOUT_CHECK_MS }, api.handle);
  http.headersTimeout = 20_000;
  http.requestTimeout = 30_000;

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: config.maxMessageBytes,
    perMessageDeflate: false,
    // No subprotocol is negotiated (docs/protocol.md): one a client offers is never echoed.
    handleProtocols: () => false,
    clientTracking: false,
  });
  // Every response says nosniff, the 101 of an upgrade too.
  wss.on('headers', (headers: string[]) => {
    headers.push('X-Content-Type-Options: nosniff');
  });

  /** Answers a refused upgrade (or connection) with a JSON error and closes the socket. */
  const refuse = (socket: Duplex, code: HttpErrorCode, message?: string, headers = ''): void => {
    socket.end(refusal(code, message, headers));
  };

  const originAllowed = (req: IncomingMessage): boolean => {
    const origin = req.headers.origin;
    if (origin === undefined) return true; // not a browser: the ticket is the credential
    if (config.allowedOrigins.includes('*') || config.allowedOrigins.includes(origin)) return true;
    try {
      const u = new URL(origin);
      return u.host === req.headers.host && u.protocol === (tls ? 'https:' : 'http:');
    } catch {
      return false;
    }
  };

  // The upgrade guard: a row of guard clauses, authentication before the handshake completes.
  // The handshake's own headers are checked before the ticket is taken, so a malformed upgrade
  // never burns a ticket. Nothing here may throw: a throw in an 'upgrade' listener would end the
  // process (it did, for a target like `http://a:99999/`), so the guard runs inside a try.
  // Memory matters here: nothing per connection may keep the request (or its URL) alive, so the
  // socket's error listener is a plain function and the async part lives in its own scope.
  const guard = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    if (closing) return refuse(socket, 'unavailable', 'The server is shutting down.');
    const malformed = malformedRequest(req);
    if (malformed !== undefined) return refuse(socket, 'bad_request', malformed);
    const url = requestTarget(req.url);
    if (url === undefined) return refuse(socket, 'bad_request', 'The request target is not a valid URL.');
    if (url.pathname !== '/ws') return refuse(socket, 'not_found');
    if (req.method !== 'GET') return refuse(socket, 'method_not_allowed', 'A WebSocket upgrade is a GET /ws.', 'Allow: GET\r\n');
    if (!wantsWebSocket(req)) return refuse(socket, 'bad_request', 'Upgrade: websocket is required.');
    if (req.headers['sec-websocket-version'] !== '13') return refuse(socket, 'upgrade_required', undefined, 'Sec-WebSocket-Version: 13\r\n');
    if (!WEBSOCKET_KEY.test(req.headers['sec-websocket-key'] ?? '')) return refuse(socket, 'bad_request', 'Sec-WebSocket-Key must be 16 random bytes in base64.');
    if (!originAllowed(req)) return refuse(socket, 'origin_forbidden', `Origin ${String(req.headers.origin).slice(0, 200)} is not allowed.`);
    const otp = url.searchParams.get('otp');
    if (otp === null || otp === '') return refuse(socket, 'ticket_required');
    admit(req, socket, head, otp, url.searchParams.get('resume') !== '1');
  };

  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', destroySelf);
    // Typed as a Duplex by Node; an HTTP(S) server's is always a net.Socket (TLSSocket is one).
    if (!(socket instanceof Socket)) {
      socket.destroy();
      return;
    }
    try {
      // Only WebSocket upgrades are Parley's; any other Upgrade (h2c) is ignored, as a server may.
      if (!wantsWebSocket(req) && requestTarget(req.url)?.pathname !== '/ws') {
        api.serveIgnoringUpgrade(req, socket, head);
        return;
      }
      guard(req, socket, head);
    } catch (err) {
      log.error({ err }, 'upgrade failed');
      refuse(socket, 'internal');
    }
  });

  // The listening socket is a plain TCP server in front of the HTTP(S) server: each connection
  // is counted per client address before HTTP sees it, so one address cannot hold thousands of
  // idle sockets, and one past the cap costs no HTTP parser: it gets a fixed 429 and is closed.
  // Behind a proxy (trustProxy) every socket comes from the proxy: then only WebSockets are
  // counted, per X-Forwarded-For address (see admit).
  const tcpByAddress = new Tally();
  const capTcp = !config.trustProxy && config.maxConnectionsPerAddress > 0;
  const tooManyConnections = Buffer.from(refusal('too_many_connections', `${config.maxConnectionsPerAddress} connections are open from this address already.`));
  const front = createNetServer((socket: Socket) => {
    if (capTcp) {
      const address = socket.remoteAddress ?? 'unknown';
      if (tcpByAddress.get(address) >= config.maxConnectionsPerAddress) {
        socket.on('error', destroySelf);
        if (tls) socket.destroy();
        else socket.end(tooManyConnections);
        return;
      }
      tcpByAddress.add(address);
      socket.once('close', () => tcpByAddress.remove(address));
    }
    http.emit('connection', socket);
  });

  // Requests Node's parser refuses (a bad request line or header, headers too large, a request
  // that took too long) get a JSON error like every other refusal, then the socket is closed.
  http.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const code: HttpErrorCode = err.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'request_timeout' : 'bad_request';
    refuse(socket, code, code === 'bad_request' ? 'The request is not valid HTTP/1.1.' : undefined);
  });

  const admit = (req: IncomingMessage, socket: Socket, head: Buffer, otp: string, autoJoin: boolean): void => {
    tickets
      .take(otp)
      .then(async (ticket) => {
        if (ticket === undefined) return refuse(socket, 'ticket_invalid');
        // A ticket never outlives its session (see Tickets.issue); a logout anywhere revokes it,
        // and so does the removal of its account (removals.ts marks the user on every node).
        if (hub.isRevoked(ticket.session)) return refuse(socket, 'ticket_invalid', 'The session behind this ticket was revoked.');
        if (hub.isRemoved(ticket.user)) return refuse(socket, 'ticket_invalid', 'The account behind this ticket was removed.');
        if (closing || socket.destroyed) return refuse(socket, 'unavailable');
        const ip = clientAddress(req, config.trustProxy);
        // From these checks to hub.add nothing awaits (handleUpgrade calls back at once), so
        // concurrent upgrades cannot pass a cap together.
        if (config.maxConnectionsPerUser > 0 && hub.connectionsOf(ticket.user) >= config.maxConnectionsPerUser) {
          return refuse(socket, 'too_many_connections', `User ${ticket.user} has ${config.maxConnectionsPerUser} connections open on this server already.`);
        }
        if (config.maxConnectionsPerAddress > 0 && hub.connectionsFrom(ip) >= config.maxConnectionsPerAddress) {
          return refuse(socket, 'too_many_connections', `${config.maxConnectionsPerAddress} connections are open from this address already.`);
        }
        // Corked: the 101 response and the first frames leave in one write (see adoptCork).
        socket.cork();
        wss.handleUpgrade(req, socket, head, (ws) => accept(ws as Tagged, socket, ip, ticket.user, ticket.session, autoJoin));
      })
      .catch((err: unknown) => {
        log.warn({ err }, 'backend unavailable during upgrade');
        refuse(socket, 'unavailable');
      });
  };

  // One set of listeners for every socket (`this` is the socket): no closures per connection.
  function onMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
    hub.handleFrame(connOf(this), data, isBinary);
  }
  function onPong(this: WebSocket): void {
    connOf(this).pingSentAt = 0;
  }
  function onError(this: WebSocket, err: Error & { code?: string }): void {
    // ws closes the socket itself (1009 for oversize frames, 1002 for protocol errors).
    connOf(this).closeReason ??= err.code ?? err.message;
  }
  function onClose(this: WebSocket, code: number): void {
    const conn = connOf(this);
    const rooms = conn.rooms.size;
    hub.remove(conn);
    log.info({ event: 'disconnect', conn: conn.id, user: conn.user, ip: conn.ip, rooms, code, reason: conn.closeReason, ms: Date.now() - conn.connectedAt }, 'disconnect');
  }

  const flusher = new Flusher(config.writeDelayMs, config.busyWriteDelayMs);
  const accept = (ws: Tagged, socket: Socket, ip: string, user: string, session: string, autoJoin: boolean) => {
    const conn = new Connection(ws, socket, flusher, user, session, ip, config);
    conn.adoptCork();
    ws[CONN] = conn;
    socket.off('error', destroySelf); // ws handles socket errors from here on
    ws.on('message', onMessage);
    ws.on('pong', onPong);
    ws.on('error', onError);
    ws.on('close', onClose);
    hub.add(conn, autoJoin);
    log.info({ event: 'connect', conn: conn.id, user, ip, rooms: conn.rooms.size }, 'connect');
  };

  await new Promise<void>((resolveListen, reject) => {
    front.once('error', reject);
    front.listen(config.port, config.host, () => {
      front.off('error', reject);
      // The HTTP server does not listen itself (front does): its 'listening' starts the
      // checks of headersTimeout and requestTimeout on the connections it is handed.
      http.emit('listening');
      resolveListen();
    });
  });
  hub.startHeartbeat();
  const port = (front.address() as AddressInfo).port;
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `${tls ? 'https' : 'http'}://${shownHost}:${port}`;
  log.info({ url, store: store.driver, tls }, 'parley listening');

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      const deadline = config.shutdownTimeoutMs;
      // No new connections; once every open one has ended, the listening socket is closed.
      const httpClosed = new Promise<void>((r) => front.close(() => r()));
      http.closeIdleConnections();
      hub.stopHeartbeat();
      removals.stop();
      flusher.close();
      await hub.closeAll(CloseCodes.going_away, 'server shutting down', deadline);
      await hub.writer.drain();
      await retention.stop();
      http.closeAllConnections();
      http.close(() => undefined); // stops its timeout checks (it never listened: the error is moot)
      await httpClosed;
      await drivers.close();
      log.info('parley stopped');
    })();
    return closed;
  };

  return { config, hub, store, retention, broker, log, hashes, port, url, close };
}
