/**
 * ParleyClient: one logical chat session over a sequence of WebSocket connections.
 *
 * - Every connection opens with a fresh one-time ticket (`POST /ticket`, or the otp of
 *   `POST /login`) on `/ws?otp=…&resume=1`, so the server follows nothing until told to.
 * - Rooms the client already has a position in (`lastSeq`) are resumed with one `resume`;
 *   rooms it has none in yet are joined (their position starts at `joined.seq`).
 * - `new_message` reaches the app only when its seq is the room's position + 1 (rooms.ts): never
 *   twice, and in order. The server replays what was missed before any live message; a hole in
 *   live delivery has the room replayed again (a `resume` of the room on the live connection);
 *   what a replay cannot bring is read from history (backfill.ts), and what history no longer
 *   has is reported as a `gap` with its exact range.
 * - Memberships are the user's, not the connection's: `welcome.rooms` lists them (`rooms`), and
 *   every connection follows them: known rooms are resumed from their position, listed rooms not
 *   known yet from the listed seq, and known rooms no longer listed are dropped (the membership
 *   ended while away). `invited`, `removed`, `left`, `room_created`, `direct_opened` and the
 *   room events about the user itself keep `rooms` up to date.
 * - Room events (`member_joined`, `banned`, …) share their room's seqs with messages and go
 *   through the same gate; `removed` ends a room.
 * - Sends carry a random `ref` and stay pending until acked; they are re-sent with the same ref
 *   on every new connection and after `ackTimeoutMs`. The server dedupes by user + ref within
 *   its `dedupeWindowMs`: past it a send is rejected (`unconfirmed`), never re-sent.
 * - An `error` `shutting_down` means the server is closing this connection (1001): nothing more
 *   is sent on it, and what it refused goes again on the next one.
 * - Frames go out paced below the server's `rateLimitPerSec`, so a long offline queue is not
 *   refused (or, worse, closed with 1008 as a flood) when it is flushed.
 */
import {
  type ClientEvents,
  DEFAULT_ROOM,
  isRoomEvent,
  isStorableText,
  type Limits,
  normalizeUserName,
  type Ref,
  type Role,
  roomKey,
  type RoomMembership,
  type ServerEvents,
  type TimelineItem,
} from '@parley/protocol';
import { login, logout, register, Session } from './auth.js';
import { DEFAULT_BASE_MS, DEFAULT_CAP_MS } from './backoff.js';
import { DEFAULT_MAX_BACKFILL, readBackfill } from './backfill.js';
import { listMembers, listRooms } from './directory.js';
import { dispatch, emitRoomEvent, type FrameHandlers, parseFrame } from './dispatch.js';
import { ParleyError } from './errors.js';
import { Emitter } from './events.js';
import { baseUrl, fetchOf } from './http.js';
import { Link } from './link.js';
import { Memberships } from './memberships.js';
import { Outbox } from './outbox.js';
import { type ModerationType, randomRef, type Request, Requests, type Settle } from './requests.js';
import { type Backfill, Rooms } from './rooms.js';
import type {
  ClientEventMap,
  ClientEventName,
  ClientOptions,
  ClientState,
  CreateRoomOptions,
  HistoryOptions,
  ListRoomsOptions,
  LoginResult,
  MemberPage,
  MembersOptions,
  MuteOptions,
  RoomDirectory,
  SendResult,
  StateEvent,
  WebSocketConstructor,
} from './types.js';

/**
 * Resumes sent to fill holes that may be unanswered at once: more rooms wait and go together in
 * the next one (the server queues at most 4 resumes of a connection behind the one running).
 */
const MAX_FILLS = 2;

/** After an `error` `shutting_down`, the server closes the connection (1001); if it has not within this, the client does. */
const SHUTDOWN_GRACE_MS = 5_000;

/** A room's one name (roomKey: NFKC, lower case, as the server names it), or an invalid_room error. */
function roomOf(room: string): string | ParleyError {
  return roomKey(room) ?? new ParleyError('invalid_room', `Invalid room name "${room.slice(0, 64)}".`);
}

export class ParleyClient {
  private readonly base: string;
  private readonly fetchImpl: typeof fetch;
  private readonly session: Session;
  private readonly events = new Emitter();
  private readonly link: Link;
  private readonly outbox: Outbox;
  private readonly requests: Requests;

  private currentState: ClientState = 'idle';
  private currentUser: string | undefined;
  private readonly positions: Rooms;
  private readonly memberships: Memberships;
  private connectWaiters: Settle<void>[] = [];
  private limits: Limits | undefined;

  /** Refs of the resume and joins that must be answered before the connection counts as open. */
  private readonly setupLeft = new Set<string>();
  private resumeRef: string | undefined;
  private readonly resumeLeft = new Set<string>();
  /** The `resume`s sent to fill holes in live delivery, by ref: the rooms whose `resumed` is still to come. */
  private readonly fills = new Map<string, Set<string>>();
  /** Rooms with a hole waiting for a fill to be sent (MAX_FILLS are unanswered). */
  private readonly fillsWaiting = new Set<string>();
  /** Set once the server said it is shutting down: nothing more goes out on this connection. */
  private draining: ReturnType<typeof setTimeout> | undefined;
  private readonly maxBackfill: number;

  constructor(options: ClientOptions) {
    const urls = typeof options.url === 'string' ? [options.url] : options.url;
    if (urls.length === 0) throw new TypeError('ParleyClient: options.url is empty');
    const bases = urls.map(baseUrl);
    this.base = bases[0] ?? '';
    const WS = options.WebSocket ?? globalWebSocket();
    if (WS === undefined) throw new TypeError('ParleyClient: no global WebSocket; pass options.WebSocket (e.g. the `ws` package)');
    this.fetchImpl = fetchOf(options.fetch, 'ParleyClient', 'options.fetch');
    this.session = new Session(this.fetchImpl, options.token, options.username, options.password);
    const reconnect = {
      baseMs: options.reconnect?.baseMs ?? DEFAULT_BASE_MS,
      capMs: options.reconnect?.capMs ?? DEFAULT_CAP_MS,
      maxAttempts: options.reconnect?.maxAttempts ?? Infinity,
    };
    const random = options.random ?? Math.random;
    const rooms: string[] = [];
    for (const name of options.rooms ?? [DEFAULT_ROOM]) {
      const room = roomOf(name);
      if (room instanceof ParleyError) throw room;
      rooms.push(room);
    }
    this.maxBackfill = options.maxBackfill ?? DEFAULT_MAX_BACKFILL;
    this.memberships = new Memberships(() => this.events.emit('rooms', { rooms: this.memberships.list() }));
    this.positions = new Rooms(rooms, {
      deliver: (m) => this.deliver(m),
      gap: (g) => this.events.emit('gap', g),
      fill: (room) => this.fill(room),
    });

    this.link = new Link(
      { urls: bases, WebSocket: WS, reconnect, random },
      {
        ticket: (base) => this.session.ticket(base),
        data: (data) => {
          const frame = parseFrame(data);
          if (frame !== undefined) dispatch(frame, this.handlers);
        },
        disconnected: () => this.disconnected(),
        reconnecting: (extra) => this.setState('reconnecting', extra),
        fail: (err, code) => this.finish(err, code, true),
      },
    );
    this.outbox = new Outbox({
      socket: () => (this.sending ? this.link.socket : undefined),
      isPending: (ref) => this.requests.has(ref),
      sent: (r) => this.requests.startAckTimer(r),
    });
    this.requests = new Requests(
      {
        live: (r) => this.sending && (r.kind === 'join' || (r.kind === 'history' && r.setup) || this.currentState === 'open'),
        maxMessageBytes: () => this.limits?.maxMessageBytes,
        dedupeWindowMs: () => this.limits?.dedupeWindowMs,
        enqueue: (r) => this.outbox.push(r),
        settled: (ref) => {
          if (this.setupLeft.delete(ref)) this.checkOpen();
        },
        generation: () => this.link.gen,
        lastFrameAt: () => this.link.lastFrameAt,
        drop: () => this.link.drop(),
      },
      options.ackTimeoutMs ?? 10_000,
      reconnect,
      random,
    );
  }

  /** POST /register. Resolves once the account exists; rejects with ParleyError(code) (e.g. `username_taken`). */
  static async register(url: string, username: string, password: string, fetchImpl?: typeof fetch): Promise<void> {
    await register(fetchOf(fetchImpl, 'ParleyClient.register', 'fetchImpl'), baseUrl(url), username, password);
  }

  /**
   * POST /login. Resolves with a session token (pass it as `options.token`); rejects at once with
   * ParleyError(code) (`invalid_credentials`, `too_many_attempts` with `retryAfterMs`, …), never retried.
   */
  static async login(url: string, username: string, password: string, fetchImpl?: typeof fetch): Promise<LoginResult> {
    return login(fetchOf(fetchImpl, 'ParleyClient.login', 'fetchImpl'), baseUrl(url), username, password);
  }

  get state(): ClientState {
    return this.currentState;
  }

  /** The user name, from the last welcome. */
  get user(): string | undefined {
    return this.currentUser;
  }

  /** The session token (given, or from the last login). */
  get token(): string | undefined {
    return this.session.token;
  }

  /**
   * The user's memberships by room, in the order they were made: visibility, role, title, peer
   * (direct rooms), muted, and seq (the latest seq known: listed, or delivered since). From the
   * last welcome, kept up to date live; every change is a `rooms` event.
   */
  get rooms(): ReadonlyMap<string, Readonly<RoomMembership>> {
    return this.memberships.map;
  }

  /** The rooms this client follows (joined, or to be joined/resumed on the next connection). */
  get followed(): ReadonlySet<string> {
    return this.positions.followed;
  }

  /** Highest seq delivered to the app for this room (0 if none). */
  lastSeq(room: string): number {
    return this.positions.lastSeq(room);
  }

  // -------------------------------------------------------------------------------------------
  // Events

  on<K extends ClientEventName>(event: K, fn: (payload: ClientEventMap[K]) => void): () => void {
    this.events.on(event, fn);
    return () => this.off(event, fn);
  }

  off<K extends ClientEventName>(event: K, fn: (payload: ClientEventMap[K]) => void): void {
    this.events.off(event, fn);
  }

  private setState(state: ClientState, extra: Omit<StateEvent, 'state'> = {}): void {
    this.currentState = state;
    this.events.emit('state', { state, ...extra });
  }

  // -------------------------------------------------------------------------------------------
  // Lifecycle

  /**
   * Connects (logging in if needed) and follows the rooms. Resolves once open with every room
   * joined or resumed. Failed attempts are retried with backoff; rejects when the client ends
   * up 'closed' instead (close(), a rejected login, a terminal close code, maxAttempts).
   */
  connect(): Promise<void> {
    if (this.currentState === 'open') return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (this.currentState === 'idle' || this.currentState === 'closed') {
      this.setState('connecting');
      this.link.start();
    }
    return p;
  }

  /** Closes cleanly (1000): no reconnect; pending requests reject with ParleyError('closed'). */
  close(): void {
    if (this.currentState === 'closed') return;
    this.link.close();
    this.finish(new ParleyError('closed', 'The client was closed.'), 1000, false);
  }

  /**
   * Logs out: closes the client (as close()) and revokes its token (POST /logout), which closes
   * the session's other sockets too. Resolves once revoked (a token the server no longer knows
   * counts); rejects with ParleyError when the server could not be told (`network`, `unavailable`).
   */
  async logout(): Promise<void> {
    const token = this.session.token;
    this.close();
    this.session.token = undefined;
    if (token !== undefined) await logout(this.fetchImpl, this.base, token);
  }

  /** Ends in 'closed': rejects everything pending and every connect() waiter. */
  private finish(err: ParleyError, code: number | undefined, withError: boolean): void {
    this.link.stop();
    this.memberships.stop();
    this.requests.rejectAll(err);
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.reject(err);
    const extra: Omit<StateEvent, 'state'> = {};
    if (code !== undefined) extra.code = code;
    if (withError) extra.error = err;
    this.setState('closed', extra);
  }

  /** Whether frames may go out: a live connection the server is not closing. */
  private get sending(): boolean {
    return this.link.live && this.draining === undefined;
  }

  /** The socket is gone: what was queued on it is dropped, and its setup and replays forgotten. */
  private disconnected(): void {
    this.outbox.clear();
    this.setupLeft.clear();
    this.resumeLeft.clear();
    this.resumeRef = undefined;
    this.fills.clear();
    this.fillsWaiting.clear();
    if (this.draining !== undefined) clearTimeout(this.draining);
    this.draining = undefined;
    this.positions.disconnected();
    this.requests.disconnected();
  }

  // -------------------------------------------------------------------------------------------
  // Incoming frames

  private readonly handlers: FrameHandlers = {
    welcome: (w) => this.onWelcome(w),
    item: (ref, m) => this.onItem(ref, m),
    invited: (i) => this.onInvited(i),
    removed: (r) => this.onRemoved(r),
    directOpened: (ref, d) => this.onDirectOpened(ref, d),
    ack: (ref, a) => {
      const request = this.requestOf(ref);
      if (request?.kind === 'send' || request?.kind === 'moderate') this.requests.settle(request).resolve({ room: a.room, seq: a.seq });
    },
    joined: (ref, j) => {
      this.positions.joined(j);
      const request = this.requestOf(ref);
      if (request?.kind !== 'join') return;
      if (this.memberships.get(j.room) === undefined && this.positions.followed.has(j.room)) {
        // Joined by name: a public room (made by this join, or not). Its details come from GET /rooms.
        this.memberships.set({ room: j.room, visibility: 'public', title: '', role: 'member', seq: j.seq });
        this.refreshMembership(j.room);
      }
      this.requests.settle(request).resolve({ room: j.room, seq: j.seq });
    },
    left: (ref, l) => {
      const request = this.requestOf(ref);
      if (request?.kind === 'leave') this.requests.settle(request).resolve();
      else if (request === undefined && !this.requests.joining(l.room)) {
        // Left on another connection of the user (or a leave answered on a connection since lost): the membership ended.
        this.positions.unfollow(l.room);
        this.settled(l.room);
      }
      this.memberships.delete(l.room);
    },
    history: (ref, h) => {
      const request = this.requestOf(ref);
      if (request?.kind === 'history') this.requests.settle(request).resolve(h.messages);
    },
    resumed: (ref, r) => this.onResumed(ref, r),
    error: (ref, e) => this.onError(e, ref, this.requestOf(ref)),
    pass: (event, payload) => this.events.emit(event, payload),
  };

  private requestOf(ref: Ref | undefined): Request | undefined {
    return ref === undefined ? undefined : this.requests.get(String(ref));
  }

  private onWelcome(w: ServerEvents['welcome']): void {
    if (this.link.live) return;
    this.currentUser = w.user;
    this.limits = w.limits;
    this.outbox.pacer.start(w.limits.rateLimitPerSec);
    this.link.live = true;
    this.followMemberships(w.rooms);
    this.events.emit('welcome', w);
    if (this.link.socket === undefined) return; // a listener closed the client

    // Rooms with a position: one resume, answered by a replay and one `resumed` per room.
    const resume: ClientEvents['resume'] = { rooms: this.positions.positions() };
    for (const room of Object.keys(resume.rooms)) {
      this.resumeLeft.add(room);
      this.positions.replaying(room);
    }
    if (this.resumeLeft.size > 0) {
      this.resumeRef = 'resume-' + randomRef();
      this.setupLeft.add(this.resumeRef);
      this.outbox.push({ kind: 'raw', frame: JSON.stringify({ type: 'resume', payload: resume, ref: this.resumeRef }) });
    }
    // Rooms without one: join (the app's own join requests, or ours).
    for (const room of this.positions.followed) {
      if (!this.positions.positioned(room) && !this.requests.joining(room)) void this.requests.join(room, true);
    }
    for (const r of this.requests.values()) {
      if (r.kind !== 'join') continue;
      this.setupLeft.add(r.ref);
      this.requests.transmit(r);
    }
    // Everything else still pending goes once the connection is open (checkOpen), in order, with the same refs.
    this.checkOpen();
  }

  /**
   * The memberships a welcome listed: they are `rooms` now. Known rooms keep their position (they
   * are resumed from it); listed rooms not known are followed from the listed seq (live from
   * there; older is history); known rooms not listed are dropped: the membership ended while away
   * (kicked, banned, left on another device). A `create_room` sent on a lost connection whose room
   * is listed as owned was done: it resolves with that membership instead of going again.
   */
  private followMemberships(rooms: readonly RoomMembership[]): void {
    const listed = new Map(rooms.map((m) => [m.room, m]));
    for (const r of [...this.requests.values()]) {
      if (r.kind !== 'create') continue;
      const m = listed.get(r.room);
      if (m?.role === 'owner' && m.visibility === r.visibility) this.requests.settle(r).resolve({ ...m });
    }
    for (const room of [...this.positions.followed]) {
      if (this.positions.positioned(room) && !listed.has(room) && !this.requests.joining(room)) this.positions.unfollow(room);
    }
    for (const m of rooms) if (!this.requests.leaving(m.room)) this.positions.start(m.room, m.seq);
    this.memberships.reset(rooms);
  }

  /** A message or room event of a followed room's stream reached the app (in order, once). */
  private deliver(m: TimelineItem): void {
    this.memberships.advanced(m.room, m.seq);
    if (!isRoomEvent(m)) {
      this.events.emit('new_message', m);
      return;
    }
    this.memberships.apply(m, this.currentUser);
    emitRoomEvent(m, (event, payload) => this.events.emit(event, payload));
  }

  /** A seq-bearing frame: through the gate; a `room_created` answering our `create_room` also settles it (the room is followed from its seq 1). */
  private onItem(ref: Ref | undefined, m: TimelineItem): void {
    const request = this.requestOf(ref);
    if (request?.kind === 'create' && isRoomEvent(m) && m.type === 'room_created') {
      const membership: RoomMembership = { room: m.room, visibility: m.visibility, title: m.title, role: 'owner', seq: m.seq };
      this.positions.start(m.room, m.seq - 1);
      this.memberships.set(membership);
      this.positions.receive(m);
      this.requests.settle(request).resolve({ ...membership });
      return;
    }
    this.positions.receive(m);
  }

  /** Made a member (invited, a direct room, a room made on another connection): followed now; its `joined` gives the position. */
  private onInvited(i: ServerEvents['invited']): void {
    const { by: _by, ...membership } = i;
    // Followed before the `rooms` event, so that its listeners see the room followed.
    if (!this.requests.leaving(i.room)) this.positions.follow(i.room);
    this.memberships.set(membership);
    this.events.emit('invited', i);
  }

  /** Kicked or banned: the room ends at `r.seq` (what is held up to it is delivered first). */
  private onRemoved(r: ServerEvents['removed']): void {
    this.positions.removed(r.room, r.seq);
    this.forgetRoom(r.room);
    this.events.emit('removed', r);
  }

  private onDirectOpened(ref: Ref | undefined, d: ServerEvents['direct_opened']): void {
    const known = this.memberships.get(d.room);
    this.positions.start(d.room, d.seq);
    this.memberships.set({ room: d.room, visibility: 'direct', title: known?.title ?? '', role: known?.role ?? 'member', seq: d.seq, peer: d.user });
    const request = this.requestOf(ref);
    if (request?.kind === 'direct') this.requests.settle(request).resolve(d.room);
    this.events.emit('direct_opened', d);
  }

  /** A room is no longer followed nor a membership (removed, or refused by a resume): its replay and fills end. */
  private forgetRoom(room: string): void {
    this.positions.unfollow(room);
    this.fillsWaiting.delete(room);
    for (const [ref, rooms] of this.fills) {
      if (!rooms.delete(room) || rooms.size > 0) continue;
      this.fills.delete(ref);
      this.sendFill();
    }
    this.settled(room);
    this.memberships.delete(room);
  }

  /** Fills in a membership's details (role, title) from GET /rooms, in the background. */
  private refreshMembership(room: string): void {
    const base = this.link.base;
    this.session.authorized(base, (token) => listRooms(this.fetchImpl, base, token, { q: room, limit: 1 })).then(
      (d) => {
        const m = d.mine.find((x) => x.room === room);
        if (m !== undefined && this.memberships.get(room) !== undefined && this.positions.followed.has(room)) this.memberships.set(m);
      },
      () => undefined, // it stays as guessed until the next welcome
    );
  }

  private checkOpen(): void {
    if (!this.link.live || this.setupLeft.size > 0 || this.currentState === 'open') return;
    this.link.opened();
    this.setState('open');
    // What waited for the rooms to be followed again (sends, leaves, room requests), in order, with the same refs.
    for (const r of this.requests.values()) if (r.kind !== 'join') this.requests.transmit(r);
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.resolve();
  }

  private onResumed(ref: Ref | undefined, r: ServerEvents['resumed']): void {
    const fill = ref === undefined ? undefined : this.fills.get(String(ref));
    if (fill !== undefined && fill.delete(r.room)) {
      // The server runs a connection's resumes one after the other: a fill that waited may have
      // followed the room again after the app left it. Leave it again.
      if (!this.positions.followed.has(r.room)) void this.requests.leave(r.room).catch(() => undefined);
      if (fill.size === 0) {
        this.fills.delete(String(ref));
        this.sendFill();
      }
    }
    const backfill = this.positions.resumed(r);
    if (backfill === undefined) this.settled(r.room);
    else this.backfill(backfill);
  }

  /** A room's replay is over (delivered, backfilled, gaps reported): the connection's setup may be done. */
  private settled(room: string): void {
    if (this.resumeLeft.delete(room) && this.resumeLeft.size === 0 && this.resumeRef !== undefined) {
      this.setupLeft.delete(this.resumeRef);
      this.checkOpen();
    }
  }

  /** Reads from history what a room's replay did not bring, then settles the room. */
  private backfill(b: Backfill): void {
    const stale = (): boolean => !this.positions.current(b);
    const page = (room: string, before: number, limit: number): Promise<TimelineItem[]> => this.requests.history(room, { room, before, limit }, true);
    readBackfill(b, this.maxBackfill, page, stale).then(
      (messages) => {
        if (messages === undefined || stale()) return;
        this.positions.backfilled(b, messages);
        this.settled(b.room);
      },
      () => {
        // History failed (the store is unavailable, say): start over on a new connection, which
        // resumes from the position (nothing past it was delivered).
        if (!stale() && this.link.live) this.link.drop();
      },
    );
  }

  /** A hole in a room's live delivery: the server replays the room from its position on this connection. */
  private fill(room: string): void {
    this.fillsWaiting.add(room);
    this.sendFill();
  }

  /** Sends one `resume` for every room waiting for a fill, from each one's position, unless MAX_FILLS are unanswered. */
  private sendFill(): void {
    if (this.fills.size >= MAX_FILLS || this.fillsWaiting.size === 0) return;
    const rooms: Record<string, number> = Object.create(null);
    const names = new Set<string>();
    for (const room of this.fillsWaiting) {
      // A room left meanwhile is not filled; its position is where its messages stopped being delivered.
      if (!this.positions.followed.has(room) || !this.positions.positioned(room)) continue;
      rooms[room] = this.positions.lastSeq(room);
      names.add(room);
    }
    this.fillsWaiting.clear();
    if (names.size === 0) return;
    const payload: ClientEvents['resume'] = { rooms };
    const ref = 'fill-' + randomRef();
    this.fills.set(ref, names);
    this.outbox.push({ kind: 'raw', frame: JSON.stringify({ type: 'resume', payload, ref }) });
  }

  /** The server is shutting down: it closes this connection (1001); if it does not in time, the client does. */
  private shuttingDown(): void {
    if (this.draining !== undefined) return;
    const gen = this.link.gen;
    this.draining = setTimeout(() => {
      this.draining = undefined;
      if (gen === this.link.gen) this.link.drop();
    }, SHUTDOWN_GRACE_MS);
  }

  private onError(e: ServerEvents['error'], ref: Ref | undefined, request: Request | undefined): void {
    if (e.code === 'shutting_down') this.shuttingDown();
    const key = ref === undefined ? undefined : String(ref);
    if (key !== undefined && (key === this.resumeRef || this.fills.has(key))) {
      if ((e.code === 'forbidden' || e.code === 'banned') && e.room !== undefined) {
        // This room may not be followed (no longer a member of a private room, banned, gone): drop it, the others resume.
        const room = roomKey(e.room) ?? e.room;
        if (this.positions.followed.has(room) || this.memberships.get(room) !== undefined) {
          this.forgetRoom(room);
        } else this.settled(room);
        return;
      }
      // The resume failed (the store is unavailable, say; the server left the rooms it had not
      // replayed): start over on a new connection, or wait for the close of one shutting down.
      if (e.code !== 'shutting_down') this.link.drop();
      return;
    }
    if (request === undefined) {
      // Not tied to a request (e.g. typing); a shutdown is the SDK's business, not the app's.
      if (ref === undefined && e.code !== 'shutting_down') this.events.emit('error', e);
      return; // a late answer to something already settled
    }
    if (this.requests.retry(request, e.code)) return;
    if (request.kind === 'leave' && e.code === 'not_in_room') {
      this.requests.settle(request).resolve();
      this.memberships.delete(request.room);
      return;
    }
    this.requests.settle(request);
    if (request.kind === 'leave' && this.memberships.get(request.room) !== undefined && !this.positions.followed.has(request.room)) {
      // Refused (the last owner of a room with other members): still a member, so follow it again.
      this.positions.follow(request.room);
      if (!this.requests.joining(request.room)) void this.requests.join(request.room, true);
    }
    if (request.kind === 'join') {
      if (!this.requests.joining(request.room, request)) this.positions.refused(request.room);
      if (request.internal) this.events.emit('error', e);
    }
    request.reject(new ParleyError(e.code, e.message));
  }

  // -------------------------------------------------------------------------------------------
  // Public requests

  /**
   * Sends a message; resolves with its ack ({room, seq}) once stored. Queued while not
   * connected. Rejects with ParleyError(code) when the server refuses it (`unavailable` and
   * `rate_limited` are retried first, up to 5 times), or 'closed' when the client closes.
   */
  send(name: string, message: string): Promise<SendResult> {
    const room = this.refuse(name);
    if (room instanceof ParleyError) return Promise.reject(room);
    if (!isStorableText(message)) return Promise.reject(new ParleyError('invalid_payload', 'The message holds U+0000 or a lone surrogate, which the server refuses.'));
    return this.requests.send(room, { message, room });
  }

  /** Follows one more room (named in any case: rooms are case-insensitive); resolves with the room's latest seq once joined. */
  join(name: string): Promise<SendResult> {
    const room = this.refuse(name);
    if (room instanceof ParleyError) return Promise.reject(room);
    this.positions.follow(room);
    return this.requests.join(room, false);
  }

  /**
   * Ends the membership of a room (the user's other connections stop following it too); it is no
   * longer followed from now on. Queued while offline. Rejects with `forbidden` for the last
   * owner of a room with other members (hand it over with setRole first): the room is followed
   * again then (from its latest seq).
   */
  leave(name: string): Promise<void> {
    const room = this.refuse(name);
    if (room instanceof ParleyError) return Promise.reject(room);
    this.positions.unfollow(room);
    this.settled(room); // its replay, if one was running, no longer holds up the connection
    // Joins of this room not yet answered are moot.
    for (const r of [...this.requests.values()]) {
      if (r.kind === 'join' && r.room === room) this.requests.settle(r).reject(new ParleyError('closed', `Left "${room}" before it was joined.`));
    }
    return this.requests.leave(room);
  }

  /** A page of a followed room's history, newest first: chat messages and room events (`isRoomEvent`). */
  history(name: string, opts: HistoryOptions = {}): Promise<TimelineItem[]> {
    const room = this.refuse(name);
    if (room instanceof ParleyError) return Promise.reject(room);
    const payload: ClientEvents['history'] = { room };
    if (opts.before !== undefined) payload.before = opts.before;
    if (opts.limit !== undefined) payload.limit = opts.limit;
    return this.requests.history(room, payload);
  }

  /** Tells the room this user is typing. Fire-and-forget: dropped when not open, not followed, within TYPING_INTERVAL_MS (1 s) of the last one, or behind a backlog of frames. */
  typing(name: string): void {
    const room = roomKey(name);
    if (room === undefined || this.currentState !== 'open' || !this.sending || !this.positions.followed.has(room) || this.outbox.length > 0) return;
    if (!this.positions.typingDue(room)) return;
    const frame: ClientEvents['typing'] = { room };
    this.outbox.push({ kind: 'raw', frame: JSON.stringify({ type: 'typing', payload: frame }) });
  }

  // -------------------------------------------------------------------------------------------
  // Rooms and moderation

  /**
   * Makes a room owned by the user (`create_room`), who follows it from its first event
   * (`room_created`, seq 1). Resolves with the membership; rejects with `room_exists`,
   * `forbidden` (a `dm.` name), `invalid_room`, …
   */
  createRoom(name: string, opts: CreateRoomOptions = {}): Promise<RoomMembership> {
    const room = this.refuse(name);
    if (room instanceof ParleyError) return Promise.reject(room);
    const payload: ClientEvents['create_room'] = { room, visibility: opts.visibility ?? 'private' };
    if (opts.title !== undefined) payload.title = opts.title;
    return this.requests.create(payload);
  }

  /** Adds `user` to `room` (owners and moderators): their connections follow it at once. Resolves with the seq of its `member_joined`. */
  invite(room: string, user: string): Promise<SendResult> {
    return this.moderate('invite', room, user, (r, u) => ({ room: r, user: u }));
  }

  /** Removes a member (of a lower rank); they may join a public room again. */
  kick(room: string, user: string, reason?: string): Promise<SendResult> {
    return this.moderate('kick', room, user, (r, u) => (reason === undefined ? { room: r, user: u } : { room: r, user: u, reason }));
  }

  /** Removes `user` (a member or not) until unban(). */
  ban(room: string, user: string, reason?: string): Promise<SendResult> {
    return this.moderate('ban', room, user, (r, u) => (reason === undefined ? { room: r, user: u } : { room: r, user: u, reason }));
  }

  unban(room: string, user: string): Promise<SendResult> {
    return this.moderate('unban', room, user, (r, u) => ({ room: r, user: u }));
  }

  /** Refuses a member's sends (`muted`) for `durationMs`, or until unmute(). */
  mute(room: string, user: string, opts: MuteOptions = {}): Promise<SendResult> {
    return this.moderate('mute', room, user, (r, u) => (opts.durationMs === undefined ? { room: r, user: u } : { room: r, user: u, durationMs: opts.durationMs }));
  }

  unmute(room: string, user: string): Promise<SendResult> {
    return this.moderate('unmute', room, user, (r, u) => ({ room: r, user: u }));
  }

  /** Gives a member a role (owners only; naming yourself hands your own role down). */
  setRole(room: string, user: string, role: Role): Promise<SendResult> {
    return this.moderate('set_role', room, user, (r, u) => ({ room: r, user: u, role }));
  }

  /** The direct room of the user and `user` (the same name for either of them, on every call), followed; resolves with its name. */
  openDirect(user: string): Promise<string> {
    if (this.currentState === 'closed') return Promise.reject(new ParleyError('closed', 'The client is closed.'));
    const name = normalizeUserName(user);
    if (name === undefined) return Promise.reject(new ParleyError('unknown_user', `Invalid user name "${user.slice(0, 32)}".`));
    return this.requests.direct(name);
  }

  /** GET /rooms: public rooms by name (`q` searches names and titles), paged with `after` = the previous `next`, and every membership of the user. */
  listRooms(opts: ListRoomsOptions = {}): Promise<RoomDirectory> {
    const base = this.link.base;
    return this.session.authorized(base, (token) => listRooms(this.fetchImpl, base, token, opts));
  }

  /** GET /rooms/{room}/members: members with their role and mute, paged. Rejects `forbidden` (403) unless a member. */
  members(name: string, opts: MembersOptions = {}): Promise<MemberPage> {
    const room = roomOf(name);
    if (room instanceof ParleyError) return Promise.reject(room);
    const base = this.link.base;
    return this.session.authorized(base, (token) => listMembers(this.fetchImpl, base, token, room, opts));
  }

  private moderate<T extends ModerationType>(type: T, name: string, user: string, payload: (room: string, user: string) => ClientEvents[T]): Promise<SendResult> {
    const room = this.refuse(name);
    if (room instanceof ParleyError) return Promise.reject(room);
    const u = normalizeUserName(user);
    if (u === undefined) return Promise.reject(new ParleyError('unknown_user', `Invalid user name "${user.slice(0, 32)}".`));
    return this.requests.moderate(type, payload(room, u));
  }

  /** The room's one name, or why the request is refused (the client is closed, the name is invalid). */
  private refuse(name: string): string | ParleyError {
    if (this.currentState === 'closed') return new ParleyError('closed', 'The client is closed.');
    return roomOf(name);
  }
}

/** The global WebSocket constructor (browsers, Node ≥ 22), if there is one. */
function globalWebSocket(): WebSocketConstructor | undefined {
  return typeof WebSocket === 'undefined' ? undefined : WebSocket;
}
