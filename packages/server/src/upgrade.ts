/**
 * The upgrade guard: every WebSocket upgrade passes a row of guard clauses (as ws's
 * `handleUpgrade`), each refusing with a JSON error and closing the socket, before the handshake
 * completes:
 *
 *   shutting down → 503 · malformed → 400 · path ≠ /ws → 404 · method ≠ GET → 405 ·
 *   no `Upgrade: websocket` → 400 · version ≠ 13 → 426 · bad key → 400 · origin → 403 ·
 *   no ticket → 401 · then the `verify` hook (the ticket redeemed, its identity still valid:
 *   401 ticket_invalid) · then the connection caps (429) · then the handshake.
 *
 * The handshake's own headers are checked before the ticket is taken, so a malformed upgrade
 * never burns a ticket. Nothing here may throw: a throw in an 'upgrade' listener would end the
 * process (it did, for a target like `http://a:99999/`), so the guard runs inside a try.
 * Memory matters here: nothing per connection may keep the request (or its URL) alive, so the
 * socket's error listener is a plain function and the async part lives in its own scope.
 */
import type { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { WebSocket, WebSocketServer } from 'ws';
import { type HttpErrorCode, HttpErrorCodes } from '@parley/protocol';
import type { Config } from './config.js';
import { errorBody } from './http/errors.js';
import { clientAddress, malformedRequest, requestTarget } from './http/request.js';
import type { Identity } from './identity/identity.js';
import type { MembershipRecord } from './store/membership.js';

/** Whether an upgrade asks for WebSocket (`Upgrade: websocket`, in any case). */
export const wantsWebSocket = (req: IncomingMessage): boolean => req.headers.upgrade?.trim().toLowerCase() === 'websocket';

/** A Sec-WebSocket-Key: 16 bytes in base64 (RFC 6455 §4.1). */
const WEBSOCKET_KEY = /^[A-Za-z0-9+/]{22}==$/;

/** A complete HTTP response refusing a request with a JSON error; the connection is closed after it. */
export function refusal(code: HttpErrorCode, message?: string, headers = ''): string {
  const [status] = HttpErrorCodes[code];
  const body = errorBody(code, message);
  return (
    `HTTP/1.1 ${status} ${code}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n${headers}Connection: close\r\n\r\n${body}`
  );
}

/** A socket's error listener before ws takes it over: the socket is destroyed, nothing else. */
export function destroySelf(this: Duplex): void {
  this.destroy();
}

/** Answers a refused upgrade (or connection) with a JSON error and closes the socket. */
export function refuse(socket: Duplex, code: HttpErrorCode, message?: string, headers = ''): void {
  socket.end(refusal(code, message, headers));
}

/** The verify hook's answer: the identity to admit, or why not. */
/** A redeemed ticket's identity and the user's memberships (hub.membershipsFor), or a refusal. */
export type Verdict = { identity: Identity; memberships: MembershipRecord[] } | { refused: HttpErrorCode; message?: string };

export interface UpgradeDeps {
  config: Config;
  log: Logger;
  tls: boolean;
  wss: WebSocketServer;
  isClosing(): boolean;
  /**
   * The authentication hook (ws's verifyClient, centrifuge's OnConnecting): the ticket of the
   * upgrade, to an identity or a refusal. Rejects only when a backend cannot answer (503).
   */
  verify(ticket: string): Promise<Verdict>;
  /** Open connections of a user, and from an address, on this node (the caps). */
  connectionsOf(user: string): number;
  connectionsFrom(address: string): number;
  /** A request with an Upgrade other than WebSocket (h2c): served as plain HTTP. */
  serveIgnoringUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void;
  /** The handshake completed: the connection is the hub's from here. */
  admitted(ws: WebSocket, socket: Socket, ip: string, identity: Identity, autoJoin: boolean, memberships: MembershipRecord[]): void;
}

export class UpgradeGuard {
  constructor(private readonly d: UpgradeDeps) {}

  /** The server's 'upgrade' listener. Never throws. */
  readonly handle = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', destroySelf);
    // Typed as a Duplex by Node; an HTTP(S) server's is always a net.Socket (TLSSocket is one).
    if (!(socket instanceof Socket)) {
      socket.destroy();
      return;
    }
    try {
      // Only WebSocket upgrades are Parley's; any other Upgrade (h2c) is ignored, as a server may.
      if (!wantsWebSocket(req) && requestTarget(req.url)?.pathname !== '/ws') {
        this.d.serveIgnoringUpgrade(req, socket, head);
        return;
      }
      this.guard(req, socket, head);
    } catch (err) {
      this.d.log.error({ err }, 'upgrade failed');
      refuse(socket, 'internal');
    }
  };

  private originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return true; // not a browser: the ticket is the credential
    const allowed = this.d.config.allowedOrigins;
    if (allowed.includes('*') || allowed.includes(origin)) return true;
    try {
      const u = new URL(origin);
      return u.host === req.headers.host && u.protocol === (this.d.tls ? 'https:' : 'http:');
    } catch {
      return false;
    }
  }

  private guard(req: IncomingMessage, socket: Socket, head: Buffer): void {
    if (this.d.isClosing()) return refuse(socket, 'unavailable', 'The server is shutting down.');
    const malformed = malformedRequest(req);
    if (malformed !== undefined) return refuse(socket, 'bad_request', malformed);
    const url = requestTarget(req.url);
    if (url === undefined) return refuse(socket, 'bad_request', 'The request target is not a valid URL.');
    if (url.pathname !== '/ws') return refuse(socket, 'not_found');
    if (req.method !== 'GET') return refuse(socket, 'method_not_allowed', 'A WebSocket upgrade is a GET /ws.', 'Allow: GET\r\n');
    if (!wantsWebSocket(req)) return refuse(socket, 'bad_request', 'Upgrade: websocket is required.');
    if (req.headers['sec-websocket-version'] !== '13') return refuse(socket, 'upgrade_required', undefined, 'Sec-WebSocket-Version: 13\r\n');
    if (!WEBSOCKET_KEY.test(req.headers['sec-websocket-key'] ?? '')) return refuse(socket, 'bad_request', 'Sec-WebSocket-Key must be 16 random bytes in base64.');
    if (!this.originAllowed(req)) return refuse(socket, 'origin_forbidden', `Origin ${String(req.headers.origin).slice(0, 200)} is not allowed.`);
    const otp = url.searchParams.get('otp');
    if (otp === null || otp === '') return refuse(socket, 'ticket_required');
    this.admit(req, socket, head, otp, url.searchParams.get('resume') !== '1');
  }

  private admit(req: IncomingMessage, socket: Socket, head: Buffer, otp: string, autoJoin: boolean): void {
    const { config } = this.d;
    this.d
      .verify(otp)
      .then((verdict) => {
        if ('refused' in verdict) return refuse(socket, verdict.refused, verdict.message);
        const { identity, memberships } = verdict;
        if (this.d.isClosing() || socket.destroyed) return refuse(socket, 'unavailable');
        const ip = clientAddress(req, config.trustProxy);
        // From these checks to the hub nothing awaits (handleUpgrade calls back at once), so
        // concurrent upgrades cannot pass a cap together.
        if (config.maxConnectionsPerUser > 0 && this.d.connectionsOf(identity.user) >= config.maxConnectionsPerUser) {
          return refuse(socket, 'too_many_connections', `User ${identity.user} has ${config.maxConnectionsPerUser} connections open on this server already.`);
        }
        if (config.maxConnectionsPerAddress > 0 && this.d.connectionsFrom(ip) >= config.maxConnectionsPerAddress) {
          return refuse(socket, 'too_many_connections', `${config.maxConnectionsPerAddress} connections are open from this address already.`);
        }
        // Corked: the 101 response and the first frames leave in one write (Connection.adoptCork).
        socket.cork();
        this.d.wss.handleUpgrade(req, socket, head, (ws) => this.d.admitted(ws, socket, ip, identity, autoJoin, memberships));
      })
      .catch((err: unknown) => {
        this.d.log.warn({ err }, 'backend unavailable during upgrade');
        refuse(socket, 'unavailable');
      });
  }
}
