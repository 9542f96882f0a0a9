/**
 * The Parley server: HTTP + the WebSocket upgrade guard + the Hub, and their lifecycle.
 *
 *   const server = await startServer(loadConfig({ overrides: { port: 0 } }));
 *   ...
 *   await server.close();
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { WEB_ROOT } from '@parley/web/root';
import { WebSocketServer, type WebSocket } from 'ws';
import { CloseCodes, type HttpErrorCode } from '@parley/protocol';
import { HashPool } from './auth/hashpool.js';
import type { Broker } from './broker/index.js';
import type { Config } from './config.js';
import { createDrivers } from './drivers.js';
import { Connection, Flusher } from './connection.js';
import { Api } from './api.js';
import { createAuthenticator, type Identity } from './identity/index.js';
import { destroySelf, refusal, refuse, UpgradeGuard } from './upgrade.js';
import { Hub } from './hub/index.js';
import { newNodeId } from './hub/cluster.js';
import { Metrics, serveMetrics, type MetricsServer } from './metrics.js';
import { RemovalWatcher } from './removals.js';
import { Retention } from './retention.js';
import { Tally } from './tally.js';
import type { Presence } from './presence/index.js';
import type { MembershipRecord, Store } from './store/store.js';

/** The chat page, where @parley/web declares it (`@parley/web/root`: the absolute path of its built dist/public). */
export const DEFAULT_WEB_ROOT: string = WEB_ROOT;

/** Each socket carries its Connection, so one set of listeners serves every socket. */
const connections = new WeakMap<WebSocket, Connection>();
const tag = (ws: WebSocket, conn: Connection): void => void connections.set(ws, conn);

/**
 * How often the HTTP server looks for requests past headersTimeout (20 s) or requestTimeout
 * (30 s) and answers them 408 (Node's default, 30 s, let a stalled request live up to a minute).
 */
const HTTP_TIMEOUT_CHECK_MS = 1000;


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
  /** What this node counts (GET /metrics). */
  readonly metrics: Metrics;
  /** Every password hash and check of this server (how many ran, how many wait). */
  readonly hashes: HashPool;
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** The bound port serving only GET /metrics, when metricsPort is set. */
  readonly metricsPort: number | undefined;
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
  const nodeId = newNodeId();
  const drivers = createDrivers(config, options, log, nodeId);
  const { store, tickets, throttle, broker, presence, rateLimiter: userLimit } = drivers;
  await drivers.init();
  const hashes = new HashPool();
  const retention = new Retention(config, store, log);
  const metrics: Metrics = new Metrics((): number => hub.connections.size, () => store.healthy);
  const hub: Hub = new Hub(config, store, log, presence, broker, userLimit, metrics, nodeId);
  broker.onMessage = (room, payload) => hub.fromBroker(room, payload);
  await hub.listen();
  metrics.brokerUp.set(broker.healthy ? 1 : 0);
  broker.onHealth = (healthy) => {
    metrics.brokerUp.set(healthy ? 1 : 0);
    if (healthy) {
      log.info({ broker: broker.driver }, 'broker connected; reading what was missed from the store');
      hub.resync();
    } else {
      log.error({ broker: broker.driver }, 'broker connection lost; serving local clients only, reconnecting');
    }
  };
  const health = drivers.health;
  let closing = false;
  const auth = createAuthenticator({ config, store, tickets, throttle, hashes, sessions: hub, log });
  const api = new Api({ config, store, auth, tickets, rateLimit: userLimit, health, log, webRoot: resolve(options.webRoot ?? DEFAULT_WEB_ROOT), isClosing: () => closing, metrics: config.metricsOnMainPort ? metrics : undefined });
  retention.start();
  const removals = new RemovalWatcher(store, hub, log);
  removals.start();

  const tls = config.tlsCert !== undefined && config.tlsKey !== undefined;
  const http: HttpServer = tls
    ? createHttpsServer({ cert: readFileSync(config.tlsCert as string), key: readFileSync(config.tlsKey as string), connectionsCheckingInterval: HTTP_TIMEOUT_CHECK_MS }, api.handle)
    : createHttpServer({ connectionsCheckingInterval: HTTP_TIMEOUT_CHECK_MS }, api.handle);
  http.headersTimeout = 20_000;
  http.requestTimeout = 30_000;
  http.on('checkExpectation', api.expectationFailed);

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

  const upgrades = new UpgradeGuard({
    config,
    log,
    tls,
    wss,
    isClosing: () => closing,
    verify: async (otp) => {
      const ticket = await tickets.take(otp);
      if (ticket === undefined) return { refused: 'ticket_invalid' };
      // A ticket never outlives its identity (see Tickets.issue); a logout anywhere revokes it,
      // and so does the removal of its account (removals.ts marks the user on every node).
      if (!auth.stillValid(ticket)) return { refused: 'ticket_invalid', message: 'The session behind this ticket was revoked, or its account removed.' };
      return { identity: ticket, memberships: await hub.membershipsFor(ticket.user) };
    },
    connectionsOf: (user) => hub.connectionsOf(user),
    connectionsFrom: (address) => hub.connectionsFrom(address),
    serveIgnoringUpgrade: (req, socket, head) => api.serveIgnoringUpgrade(req, socket, head),
    admitted: (ws, socket, ip, identity, autoJoin, memberships) => accept(ws, socket, ip, identity, autoJoin, memberships),
  });
  http.on('upgrade', upgrades.handle);

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
  http.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const code: HttpErrorCode = err.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'request_timeout' : 'bad_request';
    // After the answers to the requests read before it (a pipeline), never in their middle.
    api.afterResponses(socket, () => (socket.writable ? refuse(socket, code, code === 'bad_request' ? 'The request is not valid HTTP/1.1.' : undefined) : socket.destroy()));
  });

  // One set of listeners for every socket (`this` is the socket): no closures per connection.
  function onMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
    const conn = connections.get(this);
    if (conn !== undefined) hub.handleFrame(conn, data, isBinary);
  }
  function onPong(this: WebSocket): void {
    connections.get(this)?.alive();
  }
  function onError(this: WebSocket, err: Error & { code?: string }): void {
    // ws closes the socket itself (1009 for oversize frames, 1002 for protocol errors).
    const conn = connections.get(this);
    if (conn !== undefined) conn.closeReason ??= err.code ?? err.message;
  }
  function onClose(this: WebSocket, code: number): void {
    const conn = connections.get(this);
    if (conn === undefined) return;
    const rooms = conn.rooms.size;
    hub.remove(conn);
    log.info({ event: 'disconnect', conn: conn.id, user: conn.user, ip: conn.ip, rooms, code, reason: conn.closeReason, ms: Date.now() - conn.connectedAt }, 'disconnect');
  }

  const flusher = new Flusher(config.writeDelayMs, config.busyWriteDelayMs);
  const accept = (ws: WebSocket, socket: Socket, ip: string, identity: Identity, autoJoin: boolean, memberships: MembershipRecord[]): void => {
    const { user, session } = identity;
    const conn = new Connection(ws, socket, flusher, user, session, ip, config, metrics);
    conn.adoptCork();
    tag(ws, conn);
    socket.off('error', destroySelf); // ws handles socket errors from here on
    ws.on('message', onMessage);
    ws.on('pong', onPong);
    ws.on('error', onError);
    ws.on('close', onClose);
    hub.add(conn, autoJoin, memberships);
    log.info({ event: 'connect', conn: conn.id, user, ip, rooms: conn.rooms.size }, 'connect');
  };

  // GET /metrics on a port of its own (metricsPort), for a scraper that must not reach the public one.
  const metricsServer: MetricsServer | undefined = config.metricsPort > 0 ? await serveMetrics(metrics, config.metricsPort, config.host) : undefined;
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
  hub.startTimers();
  const port = (front.address() as AddressInfo).port;
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `${tls ? 'https' : 'http'}://${shownHost}:${port}`;
  log.info({ url, store: store.driver, tls, node: nodeId }, 'parley listening');

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      const deadline = config.shutdownTimeoutMs;
      // No new connections; once every open one has ended, the listening socket is closed.
      const httpClosed = new Promise<void>((r) => front.close(() => r()));
      http.closeIdleConnections();
      hub.stopTimers();
      removals.stop();
      // Every event accepted is answered (acked or refused) before the connections close with 1001.
      await hub.quiesce(deadline);
      await hub.writer.drain();
      await hub.closeAll(CloseCodes.going_away, 'server shutting down', deadline);
      flusher.close();
      await retention.stop();
      http.closeAllConnections();
      http.close(() => undefined); // stops its timeout checks (it never listened: the error is moot)
      await httpClosed;
      await drivers.close();
      await metricsServer?.close();
      log.info('parley stopped');
    })();
    return closed;
  };

  return { config, hub, store, retention, broker, log, metrics, hashes, port, metricsPort: metricsServer?.port, url, close };
}
