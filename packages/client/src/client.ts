/**
 * ParleyClient: one logical chat session over a sequence of WebSocket connections.
 *
 * - Every connection opens with a fresh one-time ticket (`POST /ticket`, or the otp of
 *   `POST /login`) on `/ws?otp=…&resume=1`, so the server follows nothing until told to.
 * - Rooms the client already has a position in (`lastSeq`) are resumed with one `resume`;
 *   rooms it has none in yet are joined (their position starts at `joined.seq`).
 * - `new_message` reaches the app only when its seq is above the room's position: never twice,
 *   and in order, because the server replays what was missed before any live message.
 * - Sends carry a random `ref` and stay pending until acked; they are re-sent with the same ref
 *   on every new connection and after `ackTimeoutMs`. The server dedupes by user + ref.
 * - Frames go out paced below the server's `rateLimitPerSec`, so a long offline queue is not
 *   refused (or, worse, closed with 1008 as a flood) when it is flushed.
 */
import {
  type ChatMessage,
  type ClientEvents,
  type ClientEventType,
  isReconnectable,
  type Limits,
  type Ref,
  isStorableText,
  roomKey,
  type ServerEvents,
  type ServerEventType,
} from '@parley/protocol';
import { backoffDelay, DEFAULT_BASE_MS, DEFAULT_CAP_MS } from './backoff.js';
import { closeCodeName, ParleyError, type ParleyErrorCode } from './errors.js';

// ---------------------------------------------------------------------------------------------
// Public types

export type ClientState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Method-style signature: handler parameters are compared bivariantly (DOM and `ws` events fit). */
type Listener<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

export interface MessageEventLike {
  readonly data: unknown;
}
export interface CloseEventLike {
  readonly code: number;
  readonly reason?: string;
}

/** The part of the WHATWG WebSocket the client uses (browsers' WebSocket and the `ws` package fit). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Listener<unknown> | null;
  onmessage: Listener<MessageEventLike> | null;
  onclose: Listener<CloseEventLike> | null;
  onerror: Listener<unknown> | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ReconnectOptions {
  /** Ceiling of the first reconnect delay, in ms. Default 500. */
  baseMs?: number;
  /** Largest reconnect delay ceiling, in ms. Default 30000. */
  capMs?: number;
  /** Consecutive failed attempts after which the client gives up ('closed', code `unreachable`). Default Infinity. */
  maxAttempts?: number;
}

export interface ClientOptions {
  /** Base http(s) URL of the server; several = failover: each reconnect attempt moves to the next one. */
  url: string | string[];
  /** An existing session token. */
  token?: string;
  /** Credentials to log in with (POST /login) when there is no token or it is rejected. */
  username?: string;
  password?: string;
  /** Rooms to follow at first connect. Default ['general']. */
  rooms?: string[];
  /** WebSocket constructor. Default globalThis.WebSocket (pass the `ws` package's on Node 20). */
  WebSocket?: WebSocketConstructor;
  /** fetch implementation. Default globalThis.fetch. */
  fetch?: typeof fetch;
  reconnect?: ReconnectOptions;
  /** An unacked send is re-sent (same ref) after this many ms. Default 10000. */
  ackTimeoutMs?: number;
  /** Random numbers in [0, 1) for the backoff jitter. Default Math.random. */
  random?: () => number;
}

export interface StateEvent {
  state: ClientState;
  /** 'reconnecting': the attempt number (0 for the first retry after a failure or a drop). */
  attempt?: number;
  /** 'reconnecting': the delay before this attempt, in ms. */
  delayMs?: number;
  /** The WebSocket close code that caused the transition, when there was one. */
  code?: number;
  /** 'closed' for any reason but close(): why. */
  error?: ParleyError;
}

export interface GapEvent {
  room: string;
  /** The room's latest seq: lastSeq(room) is now this. Reload the room's history. */
  seq: number;
}

type PassedThrough = Exclude<ServerEventType, 'ack' | 'welcome' | 'resumed' | 'history' | 'joined' | 'left' | 'room_changed'>;

/** Events of ParleyClient.on(): server events passed through, plus the client's own. */
export interface ClientEventMap extends Pick<ServerEvents, PassedThrough> {
  /** Every state transition (and every scheduled reconnect attempt). */
  state: StateEvent;
  /** A resume could not replay everything missed in a room (recovered:false): reload its history. */
  gap: GapEvent;
  /** Each connection's first frame. */
  welcome: ServerEvents['welcome'];
}

export type ClientEventName = keyof ClientEventMap;

export interface SendResult {
  room: string;
  seq: number;
}

export interface HistoryOptions {
  /** Only messages with a seq below this. */
  before?: number;
  /** Page size (server default 50, at most 100). */
  limit?: number;
}

// ---------------------------------------------------------------------------------------------
// Internals

const HTTP_TIMEOUT_MS = 20_000;
/** A connection that is not welcomed and set up (joined/resumed) within this is replaced. */
const SETUP_TIMEOUT_MS = 20_000;
/** Sends refused with `unavailable` or `rate_limited` are retried this many times. */
const MAX_RETRIES = 5;
/** Typing notices are sent at most this often per room (the server passes on no more). */
const TYPING_INTERVAL_MS = 1000;
/** Outgoing frames are paced at this fraction of the server's rateLimitPerSec. */
const PACE = 0.9;
const RETRYABLE: ReadonlySet<string> = new Set(['unavailable', 'rate_limited']);

type Timer = ReturnType<typeof setTimeout>;

interface Settle<T> {
  resolve: (value: T) => void;
  reject: (err: ParleyError) => void;
}

interface RequestBase {
  ref: string;
  room: string;
  /** The serialized frame, sent as is every time. */
  frame: string;
  retries: number;
  /** Ack or retry timer. */
  timer: Timer | undefined;
  /** Waiting in the outbox. */
  queued: boolean;
  /** When the frame last went on the wire. */
  sentAt: number;
}
interface SendRequest extends RequestBase, Settle<SendResult> {
  kind: 'send';
}
interface JoinRequest extends RequestBase, Settle<SendResult> {
  kind: 'join';
  /** Made by the client itself (initial rooms): failures go to the 'error' event. */
  internal: boolean;
}
interface LeaveRequest extends RequestBase, Settle<void> {
  kind: 'leave';
}
interface HistoryRequest extends RequestBase, Settle<ChatMessage[]> {
  kind: 'history';
}
type Request = SendRequest | JoinRequest | LeaveRequest | HistoryRequest;

type Outgoing = Request | { kind: 'raw'; frame: string };

interface Frame {
  type: string;
  payload: unknown;
  ref?: Ref;
}

type AnyListener = (payload: never) => void;

const noop = (): void => undefined;

function randomRef(): string {
  const c = (globalThis as { crypto?: { getRandomValues<T extends Uint8Array>(a: T): T } }).crypto;
  if (c === undefined) throw new Error('@parley/client needs globalThis.crypto.getRandomValues (browsers, Node >= 20)');
  const bytes = c.getRandomValues(new Uint8Array(16));
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

function byteLength(s: string): number {
  return new TextEncoder().encode(s).length;
}

/** A room's one name (roomKey: NFKC, lower case, as the server names it), or an invalid_room error. */
function roomOf(room: string): string | ParleyError {
  return roomKey(room) ?? new ParleyError('invalid_room', `Invalid room name "${room.slice(0, 64)}".`);
}

/** Resolves a base URL (relative ones against the page's location). */
function baseUrl(url: string): string {
  const here = (globalThis as { location?: { href?: string } }).location?.href;
  const u = here === undefined ? new URL(url) : new URL(url, here);
  if (!/^(https?|wss?):$/.test(u.protocol)) throw new TypeError(`Parley URL must be http(s): ${url}`);
  u.search = '';
  u.hash = '';
  return u.toString().replace(/\/+$/, '');
}

function httpUrl(base: string, path: string): string {
  return base.replace(/^ws/, 'http') + path;
}

function socketUrl(base: string, otp: string): string {
  return `${base.replace(/^http/, 'ws')}/ws?otp=${encodeURIComponent(otp)}&resume=1`;
}

async function post(fetchImpl: typeof fetch, base: string, path: string, body: unknown, token?: string): Promise<unknown> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const init: RequestInit = { method: 'POST', headers };
  if (body !== undefined) init.body = JSON.stringify(body);
  const timeout = (AbortSignal as { timeout?: (ms: number) => AbortSignal }).timeout;
  if (timeout !== undefined) init.signal = timeout.call(AbortSignal, HTTP_TIMEOUT_MS);
  let res: Response;
  try {
    res = await fetchImpl(httpUrl(base, path), init);
  } catch (err) {
    throw new ParleyError('network', `POST ${path} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  let json: unknown;
  try {
    json = await res.json();
  } catch {
    json = undefined;
  }
  if (res.ok) return json;
  const error = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = typeof error?.code === 'string' ? (error.code as ParleyErrorCode) : res.status >= 500 ? 'unavailable' : 'network';
  const message = typeof error?.message === 'string' ? error.message : `POST ${path} answered ${res.status}`;
  throw new ParleyError(code, message, { status: res.status });
}

// ---------------------------------------------------------------------------------------------

export class ParleyClient {
  private readonly urls: string[];
  private urlIndex = 0;
  private readonly WS: WebSocketConstructor;
  private readonly fetchImpl: typeof fetch;
  private readonly username: string | undefined;
  private readonly password: string | undefined;
  private readonly reconnectOptions: { baseMs: number; capMs: number; maxAttempts: number };
  private readonly ackTimeoutMs: number;
  private readonly random: () => number;

  private currentState: ClientState = 'idle';
  private currentUser: string | undefined;
  private currentToken: string | undefined;
  private readonly followed: Set<string>;
  private readonly seqs = new Map<string, number>();
  private readonly listeners = new Map<ClientEventName, Set<AnyListener>>();

  /** Pending requests by ref, in the order they were made. */
  private readonly pending = new Map<string, Request>();
  private connectWaiters: Settle<void>[] = [];

  /** Bumped for every attempt and by close(): callbacks of older ones are ignored. */
  private gen = 0;
  private ws: WebSocketLike | undefined;
  /** Welcomed: frames may be sent. */
  private live = false;
  private attempt = 0;
  private reconnectTimer: Timer | undefined;
  private setupTimer: Timer | undefined;
  /** Refs of the resume and joins that must be answered before the connection counts as open. */
  private readonly setupLeft = new Set<string>();
  private resumeRef: string | undefined;
  private readonly resumeLeft = new Set<string>();
  private lastFrameAt = 0;
  private readonly typingAt = new Map<string, number>();

  // Outgoing pacing (from the welcome's rateLimitPerSec).
  private limits: Limits | undefined;
  private outbox: Outgoing[] = [];
  private tokens = 0;
  private refilledAt = 0;
  private pumpTimer: Timer | undefined;

  constructor(options: ClientOptions) {
    const urls = typeof options.url === 'string' ? [options.url] : options.url;
    if (urls.length === 0) throw new TypeError('ParleyClient: options.url is empty');
    this.urls = urls.map(baseUrl);
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (WS === undefined) throw new TypeError('ParleyClient: no global WebSocket; pass options.WebSocket (e.g. the `ws` package)');
    this.WS = WS;
    const f = options.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    if (f === undefined) throw new TypeError('ParleyClient: no global fetch; pass options.fetch');
    this.fetchImpl = (input, init) => f(input, init); // never called as a method of this object
    this.currentToken = options.token;
    this.username = options.username;
    this.password = options.password;
    this.reconnectOptions = {
      baseMs: options.reconnect?.baseMs ?? DEFAULT_BASE_MS,
      capMs: options.reconnect?.capMs ?? DEFAULT_CAP_MS,
      maxAttempts: options.reconnect?.maxAttempts ?? Infinity,
    };
    this.ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
    this.random = options.random ?? Math.random;
    const rooms: string[] = [];
    for (const name of options.rooms ?? ['general']) {
      const room = roomOf(name);
      if (room instanceof ParleyError) throw room;
      rooms.push(room);
    }
    this.followed = new Set(rooms);
  }

  /** POST /register. Resolves once the account exists; rejects with ParleyError(code) (e.g. `username_taken`). */
  static async register(url: string, username: string, password: string, fetchImpl?: typeof fetch): Promise<void> {
    const f = fetchImpl ?? (globalThis as { fetch?: typeof fetch }).fetch;
    if (f === undefined) throw new TypeError('ParleyClient.register: no global fetch; pass fetchImpl');
    await post((input, init) => f(input, init), baseUrl(url), '/register', { username, password });
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
    return this.currentToken;
  }

  /** The rooms followed (joined, or to be joined/resumed on the next connection). */
  get rooms(): ReadonlySet<string> {
    return this.followed;
  }

  /** Highest seq delivered to the app for this room (0 if none). */
  lastSeq(room: string): number {
    return this.seqs.get(roomKey(room) ?? room) ?? 0;
  }

  // -------------------------------------------------------------------------------------------
  // Events

  on<K extends ClientEventName>(event: K, fn: (payload: ClientEventMap[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (set === undefined) this.listeners.set(event, (set = new Set()));
    set.add(fn as AnyListener);
    return () => this.off(event, fn);
  }

  off<K extends ClientEventName>(event: K, fn: (payload: ClientEventMap[K]) => void): void {
    this.listeners.get(event)?.delete(fn as AnyListener);
  }

  private emit<K extends ClientEventName>(event: K, payload: ClientEventMap[K]): void {
    const set = this.listeners.get(event);
    if (set === undefined) return;
    for (const fn of [...set]) {
      try {
        (fn as (p: ClientEventMap[K]) => void)(payload);
      } catch (err) {
        // A listener's bug must not break the client; report it like an uncaught error.
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }

  private setState(state: ClientState, extra: Omit<StateEvent, 'state'> = {}): void {
    this.currentState = state;
    this.emit('state', { state, ...extra });
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
      this.attempt = 0;
      this.setState('connecting');
      void this.runAttempt();
    }
    return p;
  }

  /** Closes cleanly (1000): no reconnect; pending requests reject with ParleyError('closed'). */
  close(): void {
    if (this.currentState === 'closed') return;
    this.gen++;
    const ws = this.ws;
    this.teardown();
    if (ws !== undefined) {
      try {
        ws.close(1000, 'client closed');
      } catch {
        // already closing
      }
    }
    this.finish(new ParleyError('closed', 'The client was closed.'), 1000, false);
  }

  /** Ends in 'closed': rejects everything pending and every connect() waiter. */
  private finish(err: ParleyError, code: number | undefined, withError: boolean): void {
    this.gen++;
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const requests = [...this.pending.values()];
    this.pending.clear();
    for (const r of requests) {
      if (r.timer !== undefined) clearTimeout(r.timer);
      r.reject(err);
    }
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.reject(err);
    const extra: Omit<StateEvent, 'state'> = {};
    if (code !== undefined) extra.code = code;
    if (withError) extra.error = err;
    this.setState('closed', extra);
  }

  private async runAttempt(): Promise<void> {
    const gen = ++this.gen;
    this.reconnectTimer = undefined;
    const base = this.urls[this.urlIndex % this.urls.length] as string;
    let otp: string;
    try {
      otp = await this.ticket(base);
    } catch (err) {
      if (gen !== this.gen) return;
      const e = err instanceof ParleyError ? err : new ParleyError('network', String(err));
      if (this.isFatal(e)) this.finish(e, undefined, true);
      else this.scheduleReconnect(undefined);
      return;
    }
    if (gen !== this.gen) return;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(socketUrl(base, otp));
    } catch {
      this.scheduleReconnect(undefined);
      return;
    }
    this.ws = ws;
    ws.onerror = noop; // a close event follows
    ws.onopen = noop;
    ws.onmessage = (ev) => {
      if (gen === this.gen) this.onData(ev.data);
    };
    ws.onclose = (ev) => {
      if (gen === this.gen) this.onDisconnect(ev.code);
    };
    this.setupTimer = setTimeout(() => {
      if (gen === this.gen) this.drop(); // no welcome, or the resume/joins never answered
    }, SETUP_TIMEOUT_MS);
  }

  /** Errors after which retrying cannot help. */
  private isFatal(e: ParleyError): boolean {
    if (e.code === 'auth') return true;
    if (e.status === undefined) return false; // network
    return e.status === 400 || e.status === 401 || e.status === 403;
  }

  /** A fresh ticket: POST /ticket with the token; on 401 (or no token) log in, if we can. */
  private async ticket(base: string): Promise<string> {
    if (this.currentToken !== undefined) {
      try {
        const body = (await post(this.fetchImpl, base, '/ticket', undefined, this.currentToken)) as { otp?: unknown };
        if (typeof body?.otp !== 'string') throw new ParleyError('network', 'POST /ticket: no otp in the answer');
        return body.otp;
      } catch (err) {
        if (!(err instanceof ParleyError) || err.status !== 401) throw err;
        this.currentToken = undefined;
        if (this.username === undefined || this.password === undefined) {
          throw new ParleyError('auth', `The session token was rejected (${err.code}) and no username/password is known.`, { status: 401 });
        }
      }
    }
    if (this.username === undefined || this.password === undefined) {
      throw new ParleyError('auth', 'No token and no username/password to log in with.');
    }
    const body = (await post(this.fetchImpl, base, '/login', { username: this.username, password: this.password })) as { token?: unknown; otp?: unknown };
    if (typeof body?.token !== 'string' || typeof body.otp !== 'string') throw new ParleyError('network', 'POST /login: no token/otp in the answer');
    this.currentToken = body.token;
    return body.otp;
  }

  private scheduleReconnect(code: number | undefined): void {
    const { maxAttempts } = this.reconnectOptions;
    if (this.attempt >= maxAttempts) {
      const msg = `Gave up after ${this.attempt} failed attempt(s).`;
      this.finish(new ParleyError('unreachable', msg, code === undefined ? {} : { closeCode: code }), code, true);
      return;
    }
    const delayMs = backoffDelay(this.attempt, this.reconnectOptions, this.random);
    const extra: Omit<StateEvent, 'state'> = { attempt: this.attempt, delayMs };
    if (code !== undefined) extra.code = code;
    this.attempt++;
    this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    const gen = ++this.gen;
    this.reconnectTimer = setTimeout(() => {
      if (gen === this.gen) void this.runAttempt();
    }, delayMs);
    this.setState('reconnecting', extra);
  }

  /** Forgets the current socket and everything tied to it (requests stay pending). */
  private teardown(): void {
    const ws = this.ws;
    this.ws = undefined;
    if (ws !== undefined) {
      ws.onmessage = null;
      ws.onopen = noop;
      ws.onclose = noop;
      ws.onerror = noop; // keep a listener: the `ws` package throws on an unhandled 'error'
    }
    this.live = false;
    if (this.setupTimer !== undefined) clearTimeout(this.setupTimer);
    this.setupTimer = undefined;
    if (this.pumpTimer !== undefined) clearTimeout(this.pumpTimer);
    this.pumpTimer = undefined;
    for (const item of this.outbox) if (item.kind !== 'raw') item.queued = false;
    this.outbox = [];
    this.setupLeft.clear();
    this.resumeLeft.clear();
    this.resumeRef = undefined;
    for (const r of [...this.pending.values()]) {
      if (r.timer !== undefined) clearTimeout(r.timer);
      r.timer = undefined;
      // A leave is done once the connection is gone: the next one will not follow the room.
      if (r.kind === 'leave') this.settle(r).resolve();
    }
  }

  /** Replaces a connection presumed dead (no welcome in time, no answer to a send). */
  private drop(): void {
    const ws = this.ws;
    this.gen++;
    if (ws !== undefined) {
      try {
        ws.close(1000, 'reconnecting');
      } catch {
        // ignore
      }
    }
    this.onDisconnect(undefined);
  }

  private onDisconnect(code: number | undefined): void {
    this.teardown();
    if (code !== undefined && !isReconnectable(code)) {
      const name = closeCodeName(code) ?? 'closed';
      this.finish(new ParleyError(name, `The server closed the connection with ${code} (${name}).`, { closeCode: code }), code, true);
      return;
    }
    this.scheduleReconnect(code);
  }

  // -------------------------------------------------------------------------------------------
  // Incoming frames

  private onData(data: unknown): void {
    this.lastFrameAt = Date.now();
    let text: string;
    if (typeof data === 'string') text = data;
    else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) text = new TextDecoder().decode(data);
    else return;
    let frame: Frame;
    try {
      frame = JSON.parse(text) as Frame;
    } catch {
      return;
    }
    if (typeof frame !== 'object' || frame === null || typeof frame.type !== 'string') return;
    this.onFrame(frame);
  }

  private onFrame(frame: Frame): void {
    const p = frame.payload as Record<string, unknown>;
    const ref = frame.ref ?? (p?.ref as Ref | undefined);
    const request = ref === undefined ? undefined : this.pending.get(String(ref));
    switch (frame.type as ServerEventType) {
      case 'welcome':
        return this.onWelcome(frame.payload as ServerEvents['welcome']);
      case 'new_message':
        return this.onMessage(frame.payload as ChatMessage);
      case 'ack': {
        if (request?.kind !== 'send') return;
        const a = frame.payload as ServerEvents['ack'];
        this.settle(request).resolve({ room: a.room, seq: a.seq });
        return;
      }
      case 'joined': {
        const j = frame.payload as ServerEvents['joined'];
        // Position starts at the join: what came before is history, not "missed". A room already
        // positioned keeps its position (a replay may still be running).
        if (this.followed.has(j.room) && !this.seqs.has(j.room)) this.seqs.set(j.room, j.seq);
        if (request?.kind === 'join') this.settle(request).resolve({ room: j.room, seq: j.seq });
        return;
      }
      case 'left':
        if (request?.kind === 'leave') this.settle(request).resolve();
        return;
      case 'history':
        if (request?.kind === 'history') this.settle(request).resolve((frame.payload as ServerEvents['history']).messages);
        return;
      case 'resumed':
        return this.onResumed(frame.payload as ServerEvents['resumed']);
      case 'error':
        return this.onError(frame.payload as ServerEvents['error'], ref, request);
      case 'presence':
      case 'user_joined':
      case 'user_left':
      case 'typing':
        this.emit(frame.type as 'presence', frame.payload as ServerEvents['presence']);
        return;
      default:
        return; // room_changed (never asked for) and unknown future events
    }
  }

  private onWelcome(w: ServerEvents['welcome']): void {
    if (this.live) return;
    this.currentUser = w.user;
    this.limits = w.limits;
    this.tokens = 1;
    this.refilledAt = Date.now();
    this.live = true;
    this.emit('welcome', w);
    if (this.ws === undefined) return; // a listener closed the client

    // Rooms with a position: one resume, answered by a replay and one `resumed` per room.
    // A null-prototype object: a room may be called __proto__.
    const resume: ClientEvents['resume'] = { rooms: Object.create(null) as Record<string, number> };
    for (const room of this.followed) {
      const seq = this.seqs.get(room);
      if (seq !== undefined) {
        resume.rooms[room] = seq;
        this.resumeLeft.add(room);
      }
    }
    if (this.resumeLeft.size > 0) {
      this.resumeRef = 'resume-' + randomRef();
      this.setupLeft.add(this.resumeRef);
      this.enqueue({ kind: 'raw', frame: JSON.stringify({ type: 'resume', payload: resume, ref: this.resumeRef }) });
    }
    // Rooms without one: join (the app's own join requests, or ours).
    const joining = new Set<string>();
    for (const r of this.pending.values()) if (r.kind === 'join') joining.add(r.room);
    for (const room of this.followed) {
      if (!this.seqs.has(room) && !joining.has(room)) this.request('join', room, { room }, true);
    }
    for (const r of this.pending.values()) {
      if (r.kind !== 'join') continue;
      this.setupLeft.add(r.ref);
      this.transmit(r);
    }
    // Then everything else still pending, in order, with the same refs.
    for (const r of this.pending.values()) if (r.kind !== 'join') this.transmit(r);
    this.checkOpen();
  }

  private checkOpen(): void {
    if (!this.live || this.setupLeft.size > 0 || this.currentState === 'open') return;
    if (this.setupTimer !== undefined) clearTimeout(this.setupTimer);
    this.setupTimer = undefined;
    this.attempt = 0;
    this.setState('open');
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.resolve();
  }

  private onMessage(m: ChatMessage): void {
    if (!this.followed.has(m.room)) return;
    const last = this.seqs.get(m.room);
    if (last !== undefined && m.seq <= last) return; // already delivered
    this.seqs.set(m.room, m.seq);
    this.emit('new_message', m);
  }

  private onResumed(r: ServerEvents['resumed']): void {
    if (this.followed.has(r.room)) {
      if (!r.recovered) {
        this.seqs.set(r.room, r.seq);
        this.emit('gap', { room: r.room, seq: r.seq });
      } else if (r.seq > this.lastSeq(r.room)) {
        this.seqs.set(r.room, r.seq);
      }
    }
    if (this.resumeLeft.delete(r.room) && this.resumeLeft.size === 0 && this.resumeRef !== undefined) {
      this.setupLeft.delete(this.resumeRef);
      this.checkOpen();
    }
  }

  private onError(e: ServerEvents['error'], ref: Ref | undefined, request: Request | undefined): void {
    if (ref !== undefined && this.resumeRef !== undefined && String(ref) === this.resumeRef) {
      // The resume failed (e.g. the store is unavailable): start over on a new connection.
      this.drop();
      return;
    }
    if (request === undefined) {
      if (ref === undefined) this.emit('error', e); // not tied to a request (e.g. typing)
      return; // a late answer to something already settled
    }
    if (RETRYABLE.has(e.code) && request.retries < MAX_RETRIES) {
      const delay = backoffDelay(request.retries, this.reconnectOptions, this.random);
      request.retries++;
      if (request.timer !== undefined) clearTimeout(request.timer);
      request.timer = setTimeout(() => {
        request.timer = undefined;
        this.transmit(request);
      }, delay);
      return;
    }
    if (request.kind === 'leave' && e.code === 'not_in_room') {
      this.settle(request).resolve();
      return;
    }
    this.settle(request);
    if (request.kind === 'join') {
      if (!this.seqs.has(request.room) && ![...this.pending.values()].some((r) => r.kind === 'join' && r.room === request.room)) {
        this.followed.delete(request.room);
      }
      if (request.internal) this.emit('error', e);
    }
    request.reject(new ParleyError(e.code, e.message));
  }

  // -------------------------------------------------------------------------------------------
  // Requests

  /** Removes a request from everything that tracks it; returns it to settle. */
  private settle<R extends Request>(r: R): R {
    this.pending.delete(r.ref);
    if (r.timer !== undefined) clearTimeout(r.timer);
    r.timer = undefined;
    if (this.setupLeft.delete(r.ref)) this.checkOpen();
    return r;
  }

  private request(kind: 'join', room: string, payload: ClientEvents['join'], internal: boolean): Promise<SendResult>;
  private request(kind: 'leave', room: string, payload: ClientEvents['leave']): Promise<void>;
  private request(kind: 'history', room: string, payload: ClientEvents['history']): Promise<ChatMessage[]>;
  private request(kind: 'send', room: string, payload: ClientEvents['send_message']): Promise<SendResult>;
  private request(kind: Request['kind'], room: string, payload: ClientEvents[ClientEventType], internal = false): Promise<unknown> {
    const ref = randomRef();
    const type = kind === 'send' ? 'send_message' : kind;
    const frame = JSON.stringify({ type, payload, ref });
    return new Promise<unknown>((resolve, reject) => {
      const base = { ref, room, frame, retries: 0, timer: undefined, queued: false, sentAt: 0, resolve, reject };
      const r = (kind === 'join' ? { ...base, kind, internal } : { ...base, kind }) as Request;
      this.pending.set(ref, r);
      if (internal) r.reject = noop; // failures of our own joins are reported as 'error' events
      this.transmit(r);
    });
  }

  /** Puts a request on the wire if a connection is live; otherwise it waits for the next one. */
  private transmit(r: Request): void {
    if (!this.live || r.queued || !this.pending.has(r.ref)) return;
    if (r.timer !== undefined) clearTimeout(r.timer);
    r.timer = undefined;
    const max = this.limits?.maxMessageBytes;
    if (max !== undefined && byteLength(r.frame) > max) {
      // The server would close the connection with 1009 for this frame: refuse it here.
      this.settle(r).reject(new ParleyError('message_too_long', `The frame is larger than the server's maxMessageBytes (${max}).`));
      return;
    }
    r.queued = true;
    this.enqueue(r);
  }

  private enqueue(item: Outgoing): void {
    this.outbox.push(item);
    this.pump();
  }

  /**
   * Frames are spaced evenly at PACE of the server's per-connection rate, without bursts: the
   * welcome does not tell the server's burst allowance, and refused frames count towards a
   * flood close (1008, terminal).
   */
  private rate(): number {
    return Math.max(0.1, (this.limits?.rateLimitPerSec ?? 1) * PACE);
  }

  private refill(): void {
    const now = Date.now();
    this.tokens = Math.min(1, this.tokens + ((now - this.refilledAt) * this.rate()) / 1000);
    this.refilledAt = now;
  }

  /** Sends from the outbox as fast as the server's rate limit allows. */
  private pump(): void {
    if (this.pumpTimer !== undefined || this.ws === undefined || !this.live) return;
    const ws = this.ws;
    this.refill();
    while (this.outbox.length > 0 && this.tokens >= 1) {
      const item = this.outbox.shift() as Outgoing;
      if (item.kind !== 'raw') {
        item.queued = false;
        if (!this.pending.has(item.ref)) continue; // settled meanwhile
      }
      try {
        ws.send(item.frame);
      } catch {
        return; // the socket is closing; its close event follows
      }
      this.tokens -= 1;
      if (item.kind === 'send') this.startAckTimer(item);
    }
    if (this.outbox.length > 0) {
      const wait = Math.ceil(((1 - this.tokens) * 1000) / this.rate());
      this.pumpTimer = setTimeout(() => {
        this.pumpTimer = undefined;
        this.pump();
      }, Math.max(1, wait));
    }
  }

  private startAckTimer(r: SendRequest): void {
    r.sentAt = Date.now();
    if (r.timer !== undefined) clearTimeout(r.timer);
    const gen = this.gen;
    r.timer = setTimeout(() => {
      r.timer = undefined;
      if (gen !== this.gen || !this.pending.has(r.ref)) return;
      // Nothing at all from the server since the send: presume the connection dead and replace
      // it (the send goes again, same ref, on the new one). Otherwise just send it again.
      if (this.lastFrameAt < r.sentAt) this.drop();
      else this.transmit(r);
    }, this.ackTimeoutMs);
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
    return this.request('send', room, { message, room });
  }

  /** Follows one more room (named in any case: rooms are case-insensitive); resolves with the room's latest seq once joined. */
  join(name: string): Promise<SendResult> {
    const room = this.refuse(name);
    if (room instanceof ParleyError) return Promise.reject(room);
    this.followed.add(room);
    return this.request('join', room, { room }, false);
  }

  /** Stops following a room. */
  leave(name: string): Promise<void> {
    const room = this.refuse(name);
    if (room instanceof ParleyError) return Promise.reject(room);
    this.followed.delete(room);
    this.seqs.delete(room);
    this.typingAt.delete(room);
    // Joins of this room not yet answered are moot.
    for (const r of [...this.pending.values()]) {
      if (r.kind === 'join' && r.room === room) this.settle(r).reject(new ParleyError('closed', `Left "${room}" before it was joined.`));
    }
    if (!this.live) return Promise.resolve();
    return this.request('leave', room, { room });
  }

  /** A page of a followed room's history, newest first. */
  history(name: string, opts: HistoryOptions = {}): Promise<ChatMessage[]> {
    const room = this.refuse(name);
    if (room instanceof ParleyError) return Promise.reject(room);
    const payload: ClientEvents['history'] = { room };
    if (opts.before !== undefined) payload.before = opts.before;
    if (opts.limit !== undefined) payload.limit = opts.limit;
    return this.request('history', room, payload);
  }

  /** Tells the room this user is typing. Fire-and-forget: dropped when not open, not followed, within 1 s of the last one, or behind a backlog of frames. */
  typing(name: string): void {
    const room = roomKey(name);
    if (room === undefined || this.currentState !== 'open' || !this.live || !this.followed.has(room) || this.outbox.length > 0) return;
    const now = Date.now();
    if (now - (this.typingAt.get(room) ?? -Infinity) < TYPING_INTERVAL_MS) return;
    this.typingAt.set(room, now);
    this.enqueue({ kind: 'raw', frame: JSON.stringify({ type: 'typing', payload: { room } }) });
  }

  /** The room's one name, or why the request is refused (the client is closed, the name is invalid). */
  private refuse(name: string): string | ParleyError {
    if (this.currentState === 'closed') return new ParleyError('closed', 'The client is closed.');
    return roomOf(name);
  }
}
