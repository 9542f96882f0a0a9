/**
 * The Hub (the seed's Manager, gorilla/websocket's hub.go): the registry of this node's
 * connections, and the wiring of the units that serve them.
 *
 *   frame ──► Router (parse, validate, limit) ──► handlers/ (by feature)
 *   send_message ──► MessageWriter ──► store ──► Rooms.accept ──► Feed (seq gate) ──► members
 *                                          └──► ClusterLink ──► other nodes' Rooms.accept
 *
 * The Hub itself holds the connections (per user and per address), admits and removes them, and
 * closes them when a session is revoked or a user removed. docs/architecture.md tells the whole
 * path and the guarantee of each unit.
 */
import type { Logger } from 'pino';
import { CloseCodes, DEFAULT_ROOM, type Limits } from '@parley/protocol';
import { type MembershipRecord, wireMembership } from '../store/membership.js';
import type { Config } from '../config.js';
import { Metrics } from '../metrics.js';
import type { Connection } from '../connection.js';
import type { UserRateLimit } from '../ratelimit/index.js';
import type { Broker } from '../broker/broker.js';
import type { Presence } from '../presence/presence.js';
import { Recent } from '../recent.js';
import type { Store } from '../store/store.js';
import { Tally } from '../tally.js';
import { atMost } from '../wait.js';
import { MessageWriter } from '../writer.js';
import { ClusterLink, newNodeId } from './cluster.js';
import { createHandlers, type HubContext, replyWithSeq } from './handlers/index.js';
import { Heartbeat } from './heartbeat.js';
import { Members } from './members.js';
import { RoomPresence } from './presence.js';
import { Rooms } from './rooms.js';
import { Router } from './router.js';

export class Hub {
  readonly connections = new Set<Connection>();
  /** Open connections per user (by lower-cased name: names compare case-insensitively). */
  private readonly byUser = new Map<string, Set<Connection>>();
  /** Open connections per client address. */
  private readonly byAddress = new Tally();
  readonly writer: MessageWriter;
  readonly limits: Limits;
  readonly link: ClusterLink;
  private readonly rooms: Rooms;
  readonly members: Members;
  private readonly router: Router;
  private readonly heartbeat: Heartbeat;
  private readonly ctx: HubContext;
  /** Sessions revoked within the last ticketTtlMs, here or on other nodes. */
  private readonly revoked: Recent;
  /** Users (lower-cased) removed within the last ticketTtlMs. */
  private readonly removed: Recent;

  constructor(
    private readonly config: Config,
    store: Store,
    log: Logger,
    presence: Presence,
    broker: Broker,
    userLimit: UserRateLimit,
    readonly metrics: Metrics = new Metrics(),
    nodeId: string = newNodeId(),
  ) {
    this.revoked = new Recent(config.ticketTtlMs);
    this.removed = new Recent(config.ticketTtlMs);
    this.link = new ClusterLink(broker, log, {
      message: (m) => this.rooms.accept(m),
      frame: (room, frame, exceptUser) => this.rooms.broadcast(room, frame, exceptUser === undefined ? undefined : (c) => c.user === exceptUser),
      revoke: (session) => this.revokedHere(session),
      invited: (user, invited) => this.members.invitedHere(user, invited),
    }, nodeId);
    this.rooms = new Rooms(store, this.link, log, metrics);
    this.members = new Members(store, this.rooms, this.link, log, (user) => this.byUser.get(user.toLowerCase()) ?? [], config.maxRoomsPerConnection, (conn, room) => {
      void replyWithSeq(this.ctx, conn, room, undefined, (seq) => conn.send('joined', { room, seq }));
    });
    const roomPresence = new RoomPresence(presence, this.rooms, log);
    this.rooms.listen(roomPresence);
    // Stored messages go to this node's rooms first, then to the other nodes.
    this.writer = new MessageWriter(store, (messages) => {
      for (const m of messages) {
        this.rooms.accept(m, true);
        this.link.message(m);
      }
    }, metrics);
    this.ctx = { config, store, log, rooms: this.rooms, members: this.members, presence: roomPresence, writer: this.writer, userLimit, metrics };
    this.router = new Router(createHandlers(this.ctx), log, config.maxRoomsPerConnection, metrics);
    this.heartbeat = new Heartbeat(this.connections, config.pingIntervalMs, config.pongTimeoutMs, (now) => roomPresence.sweep(now));
    this.limits = {
      maxMessageBytes: config.maxMessageBytes,
      maxMessageChars: config.maxMessageChars,
      rateLimitPerSec: config.rateLimitPerSec,
      rateLimitBurst: config.rateLimitBurst,
      userRateLimitPerSec: config.userRateLimitPerSec,
      maxRoomsPerConnection: config.maxRoomsPerConnection,
      dedupeWindowMs: config.dedupeWindowMs,
    };
  }

  /**
   * The memberships a new connection of `user` lists in its welcome (the first
   * maxRoomsPerConnection). A user in no room is made a member of DEFAULT_ROOM first (created,
   * public and owned by nobody, if it does not exist: the operator gives it an owner with
   * `parley room role`). Read before the upgrade completes: a store that cannot answer
   * refuses the connection (503).
   */
  async membershipsFor(user: string): Promise<MembershipRecord[]> {
    const max = this.config.maxRoomsPerConnection;
    const mine = await this.ctx.store.membershipsOf(user, max);
    if (mine.length > 0) return mine;
    const out = await this.members.apply({ type: 'join', room: DEFAULT_ROOM, user, create: true, unowned: true });
    if (!out.ok) return []; // banned from it: a user in no room
    return this.ctx.store.membershipsOf(user, max);
  }

  /**
   * Registers a new connection: its welcome lists the user's memberships (`memberships`, from
   * membershipsFor), and it follows each of them (a `joined` with its seq for each), DEFAULT_ROOM
   * current when it is one; unless it was opened with `resume=1`: then it follows nothing until
   * its `resume` names the rooms to replay, so no live message can overtake the replay.
   */
  add(conn: Connection, autoJoin = true, memberships: readonly MembershipRecord[] = []): void {
    this.connections.add(conn);
    const key = conn.user.toLowerCase();
    let mine = this.byUser.get(key);
    if (mine === undefined) this.byUser.set(key, (mine = new Set()));
    mine.add(conn);
    this.byAddress.add(conn.ip);
    const now = Date.now();
    const current = !autoJoin ? null : memberships.some((m) => m.room === DEFAULT_ROOM) ? DEFAULT_ROOM : (memberships[0]?.room ?? null);
    conn.send('welcome', {
      user: conn.user,
      room: current,
      rooms: memberships.map((m) => wireMembership(m, now)),
      limits: this.limits,
      heartbeatMs: this.config.pingIntervalMs,
    });
    if (!autoJoin) return;
    for (const m of memberships) this.members.follow(conn, m.room, m.mutedUntil);
    conn.current = current ?? undefined;
    for (const m of memberships) void replyWithSeq(this.ctx, conn, m.room, undefined, (seq) => conn.send('joined', { room: m.room, seq }));
  }

  /** Forgets a closed connection: its rooms, its counts. */
  remove(conn: Connection): void {
    if (!this.connections.delete(conn)) return;
    const key = conn.user.toLowerCase();
    const mine = this.byUser.get(key);
    mine?.delete(conn);
    if (mine?.size === 0) this.byUser.delete(key);
    this.byAddress.remove(conn.ip);
    this.rooms.leaveAll(conn);
    conn.disposed();
  }

  /** Entry point for every frame a client sends. Never throws. */
  handleFrame(conn: Connection, data: Buffer, isBinary: boolean): void {
    this.router.handleFrame(conn, data, isBinary);
  }

  /** Members of `room` on this node. */
  roomSize(room: string): number {
    return this.rooms.size(room);
  }

  /** Rooms with members on this node. */
  get roomCount(): number {
    return this.rooms.count;
  }

  /** A payload the broker received on `topic`, for the cluster link. Never throws. */
  fromBroker(topic: string, payload: string): void {
    this.link.received(topic, payload);
  }

  /** After a broker outage: read from the store what the other nodes published meanwhile. */
  resync(): void {
    this.rooms.resync();
  }

  /** Listens for other nodes' notices (session revocations) when there are other nodes. */
  listen(): Promise<void> {
    return this.link.listen();
  }

  /**
   * Logout: closes the session's connections with 4500 on every node, and every node refuses
   * its unredeemed tickets from now on (so an upgrade needs no second session read). Returns
   * how many connections this node closed.
   */
  revokeSession(session: string): number {
    this.link.revoke(session);
    return this.revokedHere(session);
  }

  /** Whether the session was revoked recently enough that tickets minted from it may still exist. */
  isRevoked(session: string): boolean {
    return this.revoked.has(session);
  }

  private revokedHere(session: string): number {
    this.revoked.mark(session);
    let n = 0;
    for (const conn of this.connections) {
      if (conn.session === session) {
        conn.close(CloseCodes.session_revoked, 'session revoked');
        n++;
      }
    }
    return n;
  }

  /** Open connections of `user` on this node. */
  connectionsOf(user: string): number {
    return this.byUser.get(user.toLowerCase())?.size ?? 0;
  }

  /** Open connections from `address` on this node. */
  connectionsFrom(address: string): number {
    return this.byAddress.get(address);
  }

  /**
   * An account was removed: its connections on this node are closed, and for as long as a ticket
   * minted before the removal could live (ticketTtlMs) the upgrade refuses its tickets. Returns
   * how many connections were closed.
   */
  removeUser(user: string, code: number, reason: string): number {
    const key = user.toLowerCase();
    this.removed.mark(key);
    const mine = [...(this.byUser.get(key) ?? [])];
    for (const conn of mine) conn.close(code, reason);
    return mine.length;
  }

  /** Whether `user` was removed recently enough that tickets minted before may still exist. */
  isRemoved(user: string): boolean {
    return this.removed.has(user.toLowerCase());
  }

  /**
   * The first step of a shutdown: stops reading frames from every connection (those already read
   * are answered `shutting_down`), then resolves once every event accepted before has been
   * answered (a message stored and acked, or refused with its code), or when `deadlineMs` passes.
   */
  async quiesce(deadlineMs: number): Promise<void> {
    this.router.shutDown();
    for (const conn of this.connections) conn.ws.pause();
    await atMost(this.router.idle(), deadlineMs);
  }

  /** Closes every connection (shutdown) and resolves when all are gone or the deadline passes. */
  async closeAll(code: number, reason: string, deadlineMs: number): Promise<void> {
    for (const conn of this.connections) conn.close(code, reason);
    const until = Date.now() + deadlineMs;
    while (this.connections.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    for (const conn of this.connections) conn.terminate(reason);
  }

  /** Starts the heartbeat and, with other nodes, the periodic catch-up of the rooms (hub/rooms.ts). */
  startTimers(): void {
    this.heartbeat.start();
    this.rooms.startCatchUp(this.config.catchUpIntervalMs);
  }

  stopTimers(): void {
    this.heartbeat.stop();
    this.rooms.stopCatchUp();
  }
}
