/**
 * The Hub (the seed's Manager): owns every connection and room membership, routes client
 * events to their handlers, broadcasts stored messages, and runs the heartbeat.
 *
 * A broadcast is serialized once into one Buffer and the same bytes go to every member.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import {
  type ChatMessage,
  type ClientEvents,
  type ClientEventType,
  CloseCodes,
  DEFAULT_ROOM,
  type ErrorCode,
  ErrorCodes,
  type Limits,
  type Ref,
  MAX_HISTORY_BYTES,
  roomKey,
} from '@parley/protocol';
import type { Config } from './config.js';
import { Connection } from './connection.js';
import { encode, frameText } from './frames.js';
import { clientEventSchemas, isClientEventType, isRef } from './schemas.js';
import { StoreError, type Store } from './store/store.js';
import { Tally } from './tally.js';
import { MessageWriter } from './writer.js';
import type { Broker } from './broker/broker.js';
import type { UserRateLimit } from './ratelimit/index.js';
import type { Presence } from './presence/presence.js';

type Handler<K extends ClientEventType> = (conn: Connection, payload: ClientEvents[K], ref: Ref | undefined) => void | Promise<void>;

/** Whether `payload.rooms` is an object with more than `max` own keys (without listing them all). */
function tooManyKeys(payload: unknown, max: number): boolean {
  const rooms = (payload as { rooms?: unknown } | null | undefined)?.rooms;
  if (typeof rooms !== 'object' || rooms === null) return false;
  let n = 0;
  for (const k in rooms) if (Object.hasOwn(rooms, k) && ++n > max) return true;
  return false;
}

/**
 * Keys marked within the last `ttlMs` (sessions revoked, users removed: for as long as a ticket
 * minted before could live). Kept in the order of marking (a repeat moves to the end), so the
 * sweep at each mark stops at the first entry still young.
 */
class Recent {
  private readonly at = new Map<string, number>();
  constructor(private readonly ttlMs: number) {}

  mark(key: string, now = Date.now()): void {
    for (const [k, t] of this.at) {
      if (now - t <= this.ttlMs) break;
      this.at.delete(k);
    }
    this.at.delete(key);
    this.at.set(key, now);
  }

  has(key: string, now = Date.now()): boolean {
    const t = this.at.get(key);
    return t !== undefined && now - t <= this.ttlMs;
  }
}

/** Bytes of a message as JSON (what it adds to a history page). */
const encodedSize = (m: ChatMessage): number => Buffer.byteLength(JSON.stringify(m));

/** Thrown inside handlers to answer the client with an `error` event. */
export class ClientError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string = ErrorCodes[code],
  ) {
    super(message);
  }
}

/**
 * Messages read from the store per query during a resume: a connection holds at most one page
 * while it waits for its socket (50 of the longest messages are about 400 KB of text).
 */
const REPLAY_PAGE = 50;
/** Typing notices are passed on at most this often per user and room; extra ones are dropped. */
export const TYPING_INTERVAL_MS = 1000;
/**
 * History requests one connection may have in flight: each may read 100 long messages, and a
 * client asking dozens at once (in one TCP read) would have them all read before any reply is
 * counted against its send queue. More are answered `rate_limited` (the SDK retries them).
 */
const MAX_HISTORY_IN_FLIGHT = 4;
/** History page size when the client names none. */
const DEFAULT_HISTORY_PAGE = 50;
/** The heartbeat pings one of this many slices of the connections at a time (see startHeartbeat). */
const HEARTBEAT_SLICES = 25;

/** How long a node waits for a missing seq before reading it from the store. */
const GAP_WAIT_MS = 150;
/** Messages read from the store per query when filling a gap or resyncing. */
const FILL_PAGE = 500;

/**
 * A room with members on this node. `next` is the next seq this node delivers: messages are
 * passed to members strictly in seq order, each once. One that arrives early (another node's
 * publication overtaken by a later one, or a gap left by a broker outage) waits in `held`; if
 * the gap is not filled within GAP_WAIT_MS the missing messages are read from the store.
 */
interface Room {
  readonly name: string;
  readonly members: Set<Connection>;
  /** Undefined until the room's latest seq has been read from the store. */
  next: number | undefined;
  readonly ready: Promise<void>;
  readonly held: Map<number, ChatMessage>;
  gapTimer: NodeJS.Timeout | undefined;
  filling: boolean;
}

/** What nodes publish to each other. `n`: the publishing node (it ignores its own). */
type Envelope = { n: string; k: 'm'; m: ChatMessage } | { n: string; k: 'f'; f: string; x?: string } | { n: string; k: 'r'; s: string };

/**
 * The broker channel for node-to-node notices that belong to no room (session revocations). Its
 * name is outside ROOM_PATTERN, so no client can join it.
 */
export const CONTROL_CHANNEL = '$control';

export class Hub {
  readonly connections = new Set<Connection>();
  /** Open connections per user (by lower-cased name: names compare case-insensitively). */
  private readonly byUser = new Map<string, Set<Connection>>();
  /** Open connections per client address. */
  private readonly byAddress = new Tally();
  /** When each user's last typing notice per room was passed on (`user\nroom`); swept by the heartbeat. */
  private readonly typingAt = new Map<string, number>();
  private readonly rooms = new Map<string, Room>();
  /** Tells this hub's publications apart from other nodes'. */
  readonly nodeId = randomBytes(6).toString('base64url');
  readonly writer: MessageWriter;
  readonly limits: Limits;
  private pingTimer: NodeJS.Timeout | undefined;
  /** Sessions revoked within the last ticketTtlMs, here or on other nodes. */
  private readonly revoked: Recent;
  /** Users (lower-cased) removed within the last ticketTtlMs. */
  private readonly removed: Recent;
  private readonly handlers: { [K in ClientEventType]: Handler<K> };

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly presence: Presence,
    private readonly broker: Broker,
    private readonly userLimit: UserRateLimit,
  ) {
    this.revoked = new Recent(config.ticketTtlMs);
    this.removed = new Recent(config.ticketTtlMs);
    // Users of a node that died: nobody removes them, so they leave when their presence expires;
    // a node cut off for longer than that brings its users back when it can refresh again.
    presence.onExpired = (room, users) => {
      for (const user of users) this.announce(room, encode('user_left', { room, user }));
    };
    presence.onReturned = (room, users) => {
      for (const user of users) this.announce(room, encode('user_joined', { room, user }));
    };
    this.writer = new MessageWriter(store, (messages) => {
      for (const m of messages) {
        this.accept(m);
        this.publish(m.room, { n: this.nodeId, k: 'm', m });
      }
    });
    this.limits = {
      maxMessageBytes: config.maxMessageBytes,
      maxMessageChars: config.maxMessageChars,
      rateLimitPerSec: config.rateLimitPerSec,
      rateLimitBurst: config.rateLimitBurst,
      userRateLimitPerSec: config.userRateLimitPerSec,
      maxRoomsPerConnection: config.maxRoomsPerConnection,
    };
    this.handlers = {
      send_message: (c, p, ref) => this.onSendMessage(c, p, ref),
      change_room: (c, p, ref) => this.onChangeRoom(c, p, ref),
      join: (c, p, ref) => this.onJoin(c, p, ref),
      leave: (c, p, ref) => this.onLeave(c, p, ref),
      history: (c, p, ref) => this.onHistory(c, p, ref),
      resume: (c, p, ref) => this.onResume(c, p, ref),
      typing: (c, p) => this.onTyping(c, p),
    };
  }

  // -------------------------------------------------------------------------------------------
  // Membership

  /**
   * Registers a new connection. It starts in DEFAULT_ROOM, unless it was opened with
   * `resume=1`: then it follows nothing until its `resume` names the rooms to replay, so no live
   * message can overtake the replay.
   */
  add(conn: Connection, autoJoin = true): void {
    this.connections.add(conn);
    const key = conn.user.toLowerCase();
    let mine = this.byUser.get(key);
    if (mine === undefined) this.byUser.set(key, (mine = new Set()));
    mine.add(conn);
    this.byAddress.add(conn.ip);
    conn.send('welcome', { user: conn.user, room: autoJoin ? DEFAULT_ROOM : null, limits: this.limits, heartbeatMs: this.config.pingIntervalMs });
    if (!autoJoin) return;
    this.join(conn, DEFAULT_ROOM);
    conn.current = DEFAULT_ROOM;
    void this.replyWithSeq(conn, DEFAULT_ROOM, undefined, (seq) => conn.send('joined', { room: DEFAULT_ROOM, seq }));
  }

  remove(conn: Connection): void {
    if (!this.connections.delete(conn)) return;
    const key = conn.user.toLowerCase();
    const mine = this.byUser.get(key);
    mine?.delete(conn);
    if (mine?.size === 0) this.byUser.delete(key);
    this.byAddress.remove(conn.ip);
    for (const room of conn.rooms) this.unjoin(conn, room);
    conn.disposed();
  }

  private join(conn: Connection, name: string): Room {
    let room = this.rooms.get(name);
    if (room === undefined) room = this.openRoom(name);
    if (conn.rooms.has(name)) return room;
    conn.rooms.add(name);
    room.members.add(conn);
    void this.announceJoin(conn, name);
    return room;
  }

  private unjoin(conn: Connection, name: string): void {
    if (!conn.rooms.delete(name)) return;
    conn.after?.delete(name);
    const room = this.rooms.get(name);
    if (room !== undefined) {
      room.members.delete(conn);
      if (room.members.size === 0) this.closeRoom(room);
    }
    void this.announceLeave(conn, name);
  }

  /** First member on this node: subscribe to the room's fan-out, then learn its latest seq. */
  private openRoom(name: string): Room {
    const room: Room = { name, members: new Set(), next: undefined, ready: Promise.resolve(), held: new Map(), gapTimer: undefined, filling: false };
    (room as { ready: Promise<void> }).ready = (async () => {
      try {
        await this.broker.subscribe(name);
      } catch (err) {
        this.log.warn({ err, room: name }, 'broker subscribe failed; local delivery only until it reconnects');
      }
      try {
        const latest = await this.store.lastSeq(name);
        room.next = latest + 1;
      } catch (err) {
        this.log.warn({ err, room: name }, 'cannot read the latest seq; starting from the first message seen');
        const first = Math.min(...room.held.keys());
        room.next = Number.isFinite(first) ? first : undefined;
      }
      if (room.next !== undefined) this.drain(room);
    })();
    this.rooms.set(name, room);
    return room;
  }

  private closeRoom(room: Room): void {
    this.rooms.delete(room.name);
    if (room.gapTimer !== undefined) clearTimeout(room.gapTimer);
    this.broker.unsubscribe(room.name).catch((err: unknown) => this.log.debug({ err, room: room.name }, 'broker unsubscribe failed'));
  }

  /** The seq a member of `name` has seen everything up to, once the room is ready. */
  private async seqOf(name: string): Promise<number> {
    const room = this.rooms.get(name);
    if (room !== undefined) {
      await room.ready;
      if (room.next !== undefined) return room.next - 1;
    }
    return this.store.lastSeq(name);
  }

  /** Presence after a join: `user_joined` to the others on the user's first connection, `presence` to the joiner. */
  private async announceJoin(conn: Connection, room: string): Promise<void> {
    try {
      const { first, users } = await this.presence.add(room, conn.user, conn.key);
      if (first) this.announce(room, encode('user_joined', { room, user: conn.user }), conn);
      if (conn.rooms.has(room)) conn.send('presence', { room, users });
    } catch (err) {
      this.log.warn({ err, room, user: conn.user }, 'presence update failed');
    }
  }

  /** Presence after a leave: `user_left` to the room when it was the user's last connection there. */
  private async announceLeave(conn: Connection, room: string): Promise<void> {
    try {
      if (await this.presence.remove(room, conn.user, conn.key)) this.announce(room, encode('user_left', { room, user: conn.user }));
    } catch (err) {
      this.log.warn({ err, room, user: conn.user }, 'presence update failed');
    }
  }

  roomSize(room: string): number {
    return this.rooms.get(room)?.members.size ?? 0;
  }

  /** Sends one frame, serialized once, to every local connection in the room (but `except`). */
  broadcast(room: string, frame: string, except?: Connection | ((c: Connection) => boolean)): void {
    const members = this.rooms.get(room)?.members;
    if (members === undefined) return;
    const data = frameText(frame);
    for (const conn of members) {
      if (conn === except || (typeof except === 'function' && except(conn))) continue;
      conn.sendFrame(data);
    }
  }

  /** An ephemeral room event (presence, typing): to local members now, and to the other nodes. */
  private announce(room: string, frame: string, except?: Connection, exceptUser?: string): void {
    this.broadcast(room, frame, exceptUser !== undefined ? (c) => c.user === exceptUser : except);
    this.publish(room, exceptUser === undefined ? { n: this.nodeId, k: 'f', f: frame } : { n: this.nodeId, k: 'f', f: frame, x: exceptUser });
  }

  private publish(room: string, env: Envelope): void {
    if (!this.broker.fanout) return;
    this.broker.publish(room, JSON.stringify(env)).catch((err: unknown) => {
      // Other nodes will read stored messages from the store when they notice the gap.
      this.log.debug({ err, room }, 'broker publish failed');
    });
  }

  /** A payload from another node. Never throws: a malformed payload is logged and dropped. */
  fromBroker(room: string, payload: string): void {
    let env: Envelope;
    try {
      env = JSON.parse(payload) as Envelope;
    } catch (err) {
      this.log.warn({ err, room }, 'malformed broker payload');
      return;
    }
    if (env.n === this.nodeId) return;
    if (room === CONTROL_CHANNEL) {
      if (env.k === 'r' && typeof env.s === 'string') this.revokedHere(env.s);
      return;
    }
    if (env.k === 'm' && typeof env.m?.seq === 'number' && env.m.room === room) this.accept(env.m);
    else if (env.k === 'f' && typeof env.f === 'string') this.broadcast(room, env.f, env.x === undefined ? undefined : (c) => c.user === env.x);
  }

  /** After a broker outage: read from the store what the other nodes published meanwhile. */
  resync(): void {
    for (const room of this.rooms.values()) void this.fill(room, Number.MAX_SAFE_INTEGER);
  }

  /** The ordering gate: delivers in seq order, once; early messages wait (see Room). */
  private accept(m: ChatMessage): void {
    const room = this.rooms.get(m.room);
    if (room === undefined) return;
    if (room.next === undefined) {
      room.held.set(m.seq, m);
      return;
    }
    if (m.seq < room.next) return; // delivered already (our own echo, or a filled gap)
    if (m.seq > room.next) {
      room.held.set(m.seq, m);
      this.armGap(room);
      return;
    }
    this.deliver(room, m);
    room.next = m.seq + 1;
    this.drain(room);
  }

  private drain(room: Room): void {
    let next = room.next as number;
    for (const seq of room.held.keys()) if (seq < next) room.held.delete(seq);
    for (let m = room.held.get(next); m !== undefined; m = room.held.get(next)) {
      room.held.delete(next);
      this.deliver(room, m);
      next++;
    }
    room.next = next;
    if (room.held.size === 0 && room.gapTimer !== undefined) {
      clearTimeout(room.gapTimer);
      room.gapTimer = undefined;
    } else if (room.held.size > 0) this.armGap(room);
  }

  private armGap(room: Room): void {
    if (room.gapTimer !== undefined) return;
    room.gapTimer = setTimeout(() => {
      room.gapTimer = undefined;
      if (room.held.size > 0 && !room.filling) void this.fill(room, Math.min(...room.held.keys()));
    }, GAP_WAIT_MS);
    room.gapTimer.unref();
  }

  /** Reads messages after `next - 1` (up to `until`) from the store and delivers them in order. */
  private async fill(room: Room, until: number): Promise<void> {
    if (room.filling || room.next === undefined) return;
    room.filling = true;
    try {
      while (room.next !== undefined && room.next < until && this.rooms.get(room.name) === room) {
        const page = await this.store.messagesAfter(room.name, room.next - 1, Math.min(FILL_PAGE, until - room.next));
        if (page.length === 0) {
          // The store has nothing in [next, until): pruned by retention. Skip to what we hold.
          if (until !== Number.MAX_SAFE_INTEGER && room.held.size > 0) {
            this.log.warn({ room: room.name, missing: room.next, next: until }, 'seq gap not in the store (pruned?); skipping ahead');
            room.next = until;
            this.drain(room);
          }
          break;
        }
        for (const m of page) if (m.seq >= room.next) room.held.set(m.seq, m);
        if (!room.held.has(room.next)) room.next = Math.min(...room.held.keys()); // partly pruned
        this.drain(room);
        if (page.length < FILL_PAGE) break;
      }
    } catch (err) {
      this.log.warn({ err, room: room.name }, 'cannot fill a seq gap from the store; retrying');
    } finally {
      room.filling = false;
    }
    // A new gap may have opened while we were reading: wait for it in turn.
    if (room.held.size > 0 && this.rooms.get(room.name) === room) this.armGap(room);
  }

  /**
   * Passes a stored message to the room's members: one serialization, the same bytes to all.
   * A member replaying the room (resume) gets it queued behind its replay instead, and one that
   * has just replayed past it does not get it twice.
   */
  private deliver(room: Room, m: ChatMessage): void {
    if (room.members.size === 0) return;
    const data = frameText(encode('new_message', m));
    for (const conn of room.members) {
      const held = conn.replaying?.get(m.room);
      if (held !== undefined) {
        conn.holdFrame(held, m.seq, data); // closes a connection whose held frames overflow its queue
        continue;
      }
      if (conn.after !== undefined) {
        const floor = conn.after.get(m.room);
        if (floor !== undefined) {
          if (m.seq <= floor) continue;
          conn.after.delete(m.room);
        }
      }
      conn.sendFrame(data);
    }
  }

  /** Listens for other nodes' notices (session revocations) when there are other nodes. */
  async listen(): Promise<void> {
    if (this.broker.fanout) await this.broker.subscribe(CONTROL_CHANNEL);
  }

  /**
   * Logout: closes the session's connections with 4500 on every node, and every node refuses
   * its unredeemed tickets from now on (so an upgrade needs no second session read). Returns
   * how many connections this node closed.
   */
  revokeSession(session: string): number {
    this.publish(CONTROL_CHANNEL, { n: this.nodeId, k: 'r', s: session });
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

  /** Closes every connection (shutdown) and resolves when all are gone or the deadline passes. */
  async closeAll(code: number, reason: string, deadlineMs: number): Promise<void> {
    for (const conn of this.connections) conn.close(code, reason);
    const until = Date.now() + deadlineMs;
    while (this.connections.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    for (const conn of this.connections) conn.terminate(reason);
  }

  // -------------------------------------------------------------------------------------------
  // Heartbeat: every connection is pinged once per pingIntervalMs, a slice at a time; one with
  // an unanswered ping older than pongTimeoutMs is destroyed. Any frame from the client also
  // proves it alive.

  /**
   * Pings are spread over the interval: every pingIntervalMs / slices one slice of the
   * connections (by id) is pinged, so each connection still gets one ping per interval but the
   * node never writes to all of them in one turn (pinging 10,000 connections at once stalled the
   * event loop for hundreds of milliseconds on this project's benchmark machine). The same pass
   * destroys the connections whose ping has gone unanswered for pongTimeoutMs.
   */
  startHeartbeat(): void {
    const { pingIntervalMs, pongTimeoutMs } = this.config;
    const slices = Math.max(1, Math.min(HEARTBEAT_SLICES, Math.floor(pingIntervalMs / 100)));
    let tick = 0;
    this.pingTimer = setInterval(() => {
      const now = Date.now();
      const slice = tick++ % slices;
      if (slice === 0) for (const [k, at] of this.typingAt) if (now - at >= TYPING_INTERVAL_MS) this.typingAt.delete(k);
      for (const conn of this.connections) {
        if (conn.pingSentAt !== 0) {
          if (now - conn.pingSentAt >= pongTimeoutMs) conn.terminate('heartbeat timeout');
        } else if (conn.id % slices === slice && conn.open) {
          // Frames waiting two whole intervals without the kernel taking any: the client stopped
          // reading (a pong proves it alive, not that it reads). Its queue is dropped.
          if (conn.stalled()) {
            conn.slowConsumer();
            continue;
          }
          conn.pingSentAt = now;
          conn.ws.ping();
        }
      }
    }, pingIntervalMs / slices);
    this.pingTimer.unref();
  }

  stopHeartbeat(): void {
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
  }

  // -------------------------------------------------------------------------------------------
  // Routing

  /** Entry point for every frame a client sends. Never throws. */
  handleFrame(conn: Connection, data: Buffer, isBinary: boolean): void {
    conn.pingSentAt = 0;
    // Frames that arrive behind a close (a slow consumer's own backlog of requests) are not served.
    if (!conn.open) return;
    if (isBinary) {
      conn.close(CloseCodes.unsupported_data, 'binary frames are not supported');
      return;
    }
    const verdict = conn.take();
    conn.hold(); // replies to this event leave in one write at the end of the turn
    if (verdict === 'flood') {
      conn.close(CloseCodes.policy_violation, 'rate limit exceeded repeatedly');
      return;
    }
    let frame: unknown;
    try {
      frame = JSON.parse(data.toString('utf8'));
    } catch {
      this.fail(conn, 'bad_json', undefined);
      return;
    }
    if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
      this.fail(conn, 'bad_event', undefined);
      return;
    }
    const { type, payload, ref: rawRef } = frame as { type?: unknown; payload?: unknown; ref?: unknown };
    if (rawRef !== undefined && !isRef(rawRef)) {
      this.fail(conn, 'bad_event', undefined, '"ref" must be a string of 1–64 characters or a safe integer.');
      return;
    }
    const ref = rawRef as Ref | undefined;
    if (typeof type !== 'string') {
      this.fail(conn, 'bad_event', ref);
      return;
    }
    if (verdict === 'limited') {
      this.fail(conn, 'rate_limited', ref);
      return;
    }
    if (!isClientEventType(type)) {
      this.fail(conn, 'unknown_type', ref, `Unknown event type "${type.slice(0, 64)}".`);
      return;
    }
    // A resume names at most maxRoomsPerConnection rooms: counted before any of them is read.
    if (type === 'resume' && tooManyKeys(payload, this.config.maxRoomsPerConnection)) {
      this.fail(conn, 'too_many_rooms', ref, `A resume names at most ${this.config.maxRoomsPerConnection} rooms.`);
      return;
    }
    const parsed = clientEventSchemas[type].safeParse(payload);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue === undefined || issue.path.length === 0 ? 'payload' : issue.path.join('.');
      this.fail(conn, 'invalid_payload', ref, `Invalid ${type} payload: ${where}: ${issue?.message ?? 'invalid'}.`);
      return;
    }
    this.dispatch(conn, type, parsed.data, ref);
  }

  private dispatch<K extends ClientEventType>(conn: Connection, type: K, payload: ClientEvents[K], ref: Ref | undefined): void {
    const handler = this.handlers[type] as Handler<K>;
    try {
      const result = handler(conn, payload, ref);
      if (result !== undefined) result.catch((err: unknown) => this.handlerFailed(conn, type, ref, err));
    } catch (err) {
      this.handlerFailed(conn, type, ref, err);
    }
  }

  private handlerFailed(conn: Connection, type: string, ref: Ref | undefined, err: unknown): void {
    if (err instanceof ClientError) {
      this.fail(conn, err.code, ref, err.message);
    } else if (err instanceof StoreError && err.code === 'unavailable') {
      this.log.warn({ err, user: conn.user, type }, 'store unavailable');
      this.fail(conn, 'unavailable', ref);
    } else if (err instanceof StoreError && err.code === 'invalid') {
      // The store refused this sender's data (and stored everyone else's): retrying cannot help.
      this.log.warn({ err, user: conn.user, type }, 'store refused a value');
      this.fail(conn, 'invalid_payload', ref, 'The store cannot keep this message; it was not accepted.');
    } else {
      this.log.error({ err, user: conn.user, type }, 'handler failed');
      this.fail(conn, 'internal', ref);
    }
  }

  private fail(conn: Connection, code: ErrorCode, ref: Ref | undefined, message: string = ErrorCodes[code]): void {
    conn.send('error', ref === undefined ? { code, message } : { code, message, ref }, ref);
  }

  /** The room's one name (roomKey: NFKC, lower case), or invalid_room. */
  private roomName(raw: string): string {
    const room = roomKey(raw);
    if (room === undefined) throw new ClientError('invalid_room');
    return room;
  }

  /**
   * Answers a join with the room's seq. If the seq cannot be read (store down) the join is undone
   * and answered with an error, so the client never follows a room it was told it could not join.
   */
  private async replyWithSeq(conn: Connection, room: string, ref: Ref | undefined, reply: (seq: number) => void): Promise<void> {
    let seq: number;
    try {
      seq = await this.seqOf(room);
    } catch (err) {
      this.unjoin(conn, room);
      if (conn.current === room) conn.current = undefined;
      this.handlerFailed(conn, 'join', ref, err);
      return;
    }
    reply(seq);
  }

  // -------------------------------------------------------------------------------------------
  // Handlers

  private async onSendMessage(conn: Connection, p: ClientEvents['send_message'], ref: Ref | undefined): Promise<void> {
    const room = p.room === undefined ? conn.current : this.roomName(p.room);
    if (room === undefined || !conn.rooms.has(room)) {
      throw new ClientError('not_in_room', room === undefined ? 'No current room: join one or name it.' : `Not in room "${room}".`);
    }
    if (p.message.length > this.config.maxMessageChars) {
      throw new ClientError('message_too_long', `The message is longer than ${this.config.maxMessageChars} characters.`);
    }
    const key = ref === undefined ? undefined : JSON.stringify(ref); // JSON keeps "1" and 1 apart
    const perUser = this.config.userRateLimitPerSec;
    if (perUser > 0 && !(await this.userLimit.hit(conn.user, perUser))) {
      // A retry of a message that was stored already is acked, not refused.
      const seen = key === undefined ? undefined : await this.store.findRef(conn.user, key);
      if (seen === undefined || ref === undefined) {
        throw new ClientError('rate_limited', `More than ${perUser} messages per second from user ${conn.user} across connections.`);
      }
      conn.send('ack', { ref, room: seen.room, seq: seen.seq }, ref);
      return;
    }
    const stored = await this.writer.submit({
      room,
      from: conn.user,
      message: p.message,
      sent: new Date().toISOString(),
      ref: key,
    });
    if (ref !== undefined) conn.send('ack', { ref, room: stored.message.room, seq: stored.message.seq }, ref);
  }

  private onChangeRoom(conn: Connection, p: ClientEvents['change_room'], ref: Ref | undefined): Promise<void> {
    const name = this.roomName(p.name);
    if (name !== conn.current) {
      if (!conn.rooms.has(name) && conn.rooms.size >= this.config.maxRoomsPerConnection + (conn.current !== undefined ? 1 : 0)) {
        throw new ClientError('too_many_rooms');
      }
      if (conn.current !== undefined) this.unjoin(conn, conn.current);
      this.join(conn, name);
      conn.current = name;
    }
    return this.replyWithSeq(conn, name, ref, (seq) => conn.send('room_changed', { name, seq }, ref));
  }

  private onJoin(conn: Connection, p: ClientEvents['join'], ref: Ref | undefined): Promise<void> {
    const room = this.roomName(p.room);
    if (!conn.rooms.has(room)) {
      if (conn.rooms.size >= this.config.maxRoomsPerConnection) throw new ClientError('too_many_rooms');
      this.join(conn, room);
    }
    return this.replyWithSeq(conn, room, ref, (seq) => conn.send('joined', { room, seq }, ref));
  }

  private onLeave(conn: Connection, p: ClientEvents['leave'], ref: Ref | undefined): void {
    const room = this.roomName(p.room);
    if (!conn.rooms.has(room)) throw new ClientError('not_in_room', `Not in room "${room}".`);
    this.unjoin(conn, room);
    if (conn.current === room) conn.current = undefined;
    conn.send('left', { room }, ref);
  }

  /**
   * typing: to the room's other users, at most once per TYPING_INTERVAL_MS per user and room,
   * however many connections the user has open (on this node).
   */
  private onTyping(conn: Connection, p: ClientEvents['typing']): void {
    const room = this.roomName(p.room);
    if (!conn.rooms.has(room)) throw new ClientError('not_in_room', `Not in room "${room}".`);
    const now = Date.now();
    const key = `${conn.user.toLowerCase()}\n${room}`;
    if (now - (this.typingAt.get(key) ?? 0) < TYPING_INTERVAL_MS) return;
    this.typingAt.set(key, now);
    this.announce(room, encode('typing', { room, user: conn.user }), undefined, conn.user);
  }

  /**
   * A page of history: at most `limit` messages, and at most MAX_HISTORY_BYTES of them (always
   * at least one), so that one small request cannot pull megabytes; the client pages on with
   * `before` as always.
   */
  private async onHistory(conn: Connection, p: ClientEvents['history'], ref: Ref | undefined): Promise<void> {
    const room = this.roomName(p.room);
    if (!conn.rooms.has(room)) throw new ClientError('not_in_room', `Not in room "${room}".`);
    if (conn.historyInFlight >= MAX_HISTORY_IN_FLIGHT) {
      throw new ClientError('rate_limited', `At most ${MAX_HISTORY_IN_FLIGHT} history requests at a time per connection.`);
    }
    conn.historyInFlight++;
    let page: ChatMessage[];
    try {
      page = await this.store.history(room, { before: p.before, limit: p.limit ?? DEFAULT_HISTORY_PAGE });
    } finally {
      conn.historyInFlight--;
    }
    // A page also fits in half the send queue, so that it never closes its own reader.
    const budget = Math.min(MAX_HISTORY_BYTES, this.config.sendQueueMaxBytes / 2);
    let bytes = 0;
    let n = 0;
    while (n < page.length) {
      bytes += encodedSize(page[n] as ChatMessage);
      if (bytes > budget && n > 0) break;
      n++;
    }
    conn.send('history', { room, messages: n === page.length ? page : page.slice(0, n) }, ref);
  }

  /**
   * resume: follow the rooms again and replay what was missed. Every room is joined and put
   * in "replaying" mode at once, synchronously, so live messages from then on are held for the
   * connection; the store is read from the client's seq on; then the held messages newer than
   * the replay are sent, and `resumed` closes the room. Nothing is lost and nothing is doubled.
   */
  private async onResume(conn: Connection, p: ClientEvents['resume'], ref: Ref | undefined): Promise<void> {
    // Names that differ only by case or Unicode form are one room: resumed from the lower seq.
    const wanted = new Map<string, number>();
    for (const [raw, after] of Object.entries(p.rooms)) {
      const room = this.roomName(raw);
      wanted.set(room, Math.min(after, wanted.get(room) ?? after));
    }
    const entries = [...wanted];
    const added = entries.filter(([room]) => !conn.rooms.has(room)).length;
    if (conn.rooms.size + added > this.config.maxRoomsPerConnection) throw new ClientError('too_many_rooms');
    conn.replaying ??= new Map();
    for (const [room] of entries) {
      this.join(conn, room);
      conn.replaying.set(room, []);
    }
    for (let i = 0; i < entries.length; i++) {
      const [room, after] = entries[i] as [string, number];
      try {
        await this.replay(conn, room, after, ref);
      } catch (err) {
        // Do not leave a room followed with a hole in it: drop the rooms not yet replayed.
        for (const [r] of entries.slice(i)) {
          conn.replaying.delete(r);
          this.unjoin(conn, r);
        }
        throw err;
      }
      if (!conn.open) return;
    }
  }

  private async replay(conn: Connection, room: string, after: number, ref: Ref | undefined): Promise<void> {
    const held = conn.replaying?.get(room) ?? [];
    // Paced by the socket: at most half the send queue is written ahead of the client (this
    // turn's corked frames included), the rest waits in the store. Live frames held meanwhile
    // count against the other half (Connection.holdFrame). A client that takes in nothing for
    // pongTimeoutMs is a slow consumer, closed with 4000 like any other.
    const half = this.config.sendQueueMaxBytes / 2;
    const paced = async (data: Buffer): Promise<boolean> => {
      if (conn.unsentBytes > half && !(await conn.drained(half, this.config.pongTimeoutMs))) {
        conn.slowConsumer();
        return false;
      }
      return conn.sendFrame(data);
    };
    const latest = await this.store.lastSeq(room);
    let last = after;
    let recovered = after <= latest && latest - after <= this.config.resumeMaxMessages;
    while (recovered && last < latest) {
      const page = await this.store.messagesAfter(room, last, REPLAY_PAGE);
      if (page.length === 0) {
        recovered = false; // everything after `last` was pruned
        break;
      }
      if ((page[0] as ChatMessage).seq !== last + 1) {
        recovered = false; // pruned by retention: a gap only history can explain
        break;
      }
      for (const m of page) {
        if (!(await paced(frameText(encode('new_message', m))))) return;
        last = m.seq;
      }
    }
    // Not recovered: the client reloads history; live messages go on from the latest seq.
    if (!recovered) last = latest;
    // Live messages held meanwhile (the array may grow while we wait for the socket).
    for (let i = 0; i < held.length; i++) {
      const h = held[i] as { seq: number; data: Buffer };
      conn.heldBytes = Math.max(0, conn.heldBytes - h.data.length);
      if (h.seq <= last) continue;
      if (!(await paced(h.data))) return;
      last = h.seq;
    }
    // No await between the loop's last check and here: nothing can slip in between.
    conn.replaying?.delete(room);
    // Messages the replay read from the store may still be on their way through the gate.
    (conn.after ??= new Map()).set(room, last);
    conn.send('resumed', { room, seq: last, recovered }, ref);
  }
}
