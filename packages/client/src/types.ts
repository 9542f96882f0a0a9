/** The SDK's public types: options, events, results, and the WebSocket shape it drives. */
import type { Role, RoomMembership, ServerEvents, ServerEventType } from '@parley/protocol';
import type { ParleyError } from './errors.js';

export type ClientState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Method-style signature: handler parameters are compared bivariantly (DOM and `ws` events fit). */
export type Listener<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

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
  /** Rooms to follow at first connect. Default [DEFAULT_ROOM] (`general`). */
  rooms?: string[];
  /** WebSocket constructor. Default globalThis.WebSocket (pass the `ws` package's on Node 20). */
  WebSocket?: WebSocketConstructor;
  /** fetch implementation. Default globalThis.fetch. */
  fetch?: typeof fetch;
  reconnect?: ReconnectOptions;
  /** An unacked send is re-sent (same ref) after this many ms. Default 10000. */
  ackTimeoutMs?: number;
  /**
   * Most messages read from history to fill one room's gap that a `resume` could not replay
   * (the rest is reported as a `gap`). Default 1000; 0 reads none.
   */
  maxBackfill?: number;
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

/**
 * Messages of a room the server no longer has (deleted by retention, or a database reset): the
 * app will never get seqs `from` to `to` (both included). Emitted in its place in the room's
 * stream: after the message `from - 1` (if it was delivered) and before the message `to + 1`.
 */
export interface GapEvent {
  room: string;
  /** The first seq missing. */
  from: number;
  /** The last seq missing. */
  to: number;
  /**
   * The room's position now (lastSeq(room)): `to`. Only when the server's room is behind what
   * was delivered (its database was reset) is it below `from` (`from - 1`): the messages the app
   * has from `from` to `to` are gone from the server, and new ones will reuse those seqs.
   */
  seq: number;
}

/**
 * Server events the SDK consumes itself, never passed to on(): the replies to its own requests
 * (`ack`, `joined`, `left`, `history` settle the promises of send/join/leave/history), the end of
 * a replay (`resumed`, surfacing as `gap` for what neither it nor history could bring) and `room_changed` (the SDK
 * never sends `change_room`). Every other server event has an entry of its own in ClientEventMap.
 */
export type ConsumedServerEventType = 'ack' | 'resumed' | 'history' | 'joined' | 'left' | 'room_changed';

type PassedThrough = Exclude<ServerEventType, ConsumedServerEventType | 'welcome'>;

/** The user's memberships changed (a welcome, invited, removed, left, a room made or opened, a role or mute of the user's own). */
export interface RoomsEvent {
  /** Every membership now, in the order they were made (as ParleyClient.rooms). */
  rooms: RoomMembership[];
}

/**
 * Events of ParleyClient.on(): server events passed through, plus the client's own.
 *
 * Room events (`room_created`, `member_joined`, `member_left`, `banned`, `unbanned`,
 * `role_changed`, `muted`, `unmuted`) share their room's seqs with `new_message` and go through
 * the same gate: each reaches the app once, in seq order among the room's messages.
 */
export interface ClientEventMap extends Pick<ServerEvents, PassedThrough> {
  /** Every state transition (and every scheduled reconnect attempt). */
  state: StateEvent;
  /** Messages of a room that are gone for good (not replayed, and no longer in history): their exact range. */
  gap: GapEvent;
  /** The memberships (ParleyClient.rooms) changed. */
  rooms: RoomsEvent;
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

/** What ParleyClient.login() resolves with. */
export interface LoginResult {
  /** The session token: pass it as `options.token` (and keep it to skip the password next time). */
  token: string;
  /** The user name as the server stores it (NFKC, with its registered case). */
  user: string;
  /** ISO-8601 UTC time at which the token expires, when the server said. */
  expiresAt?: string;
}

export interface CreateRoomOptions {
  /** Default 'private' (a public room can also be made by join()). */
  visibility?: 'public' | 'private';
  /** Up to MAX_TITLE_LENGTH characters. */
  title?: string;
}

export interface MuteOptions {
  /** How long, in ms (at most MAX_MUTE_MS). Absent: until unmute(). */
  durationMs?: number;
}

export interface ListRoomsOptions {
  /** Only rooms whose name or title holds this (case-insensitive). */
  q?: string;
  /** The `next` of the previous page. */
  after?: string;
  /** Page size (server default 50, at most MAX_ROOMS_PAGE). */
  limit?: number;
}

/** A public room as GET /rooms lists it. */
export interface RoomListing {
  room: string;
  title: string;
  /** How many members it has. */
  members: number;
}

/** What ParleyClient.listRooms() resolves with (GET /rooms). */
export interface RoomDirectory {
  /** Public rooms, by name. */
  rooms: RoomListing[];
  /** Pass as `after` for the next page; absent on the last one. */
  next?: string;
  /** Every membership of the caller. */
  mine: RoomMembership[];
}

export interface MembersOptions {
  after?: string;
  limit?: number;
}

/** A member as GET /rooms/{room}/members lists them. */
export interface RoomMember {
  user: string;
  role: Role;
  /** Present while muted (`until` absent: until unmuted). */
  muted?: { until?: string };
}

/** What ParleyClient.members() resolves with (GET /rooms/{room}/members). */
export interface MemberPage {
  room: string;
  members: RoomMember[];
  next?: string;
}
