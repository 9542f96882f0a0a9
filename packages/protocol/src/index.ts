/**
 * @parley/protocol — the one source of truth for Parley's wire protocol.
 *
 * Every frame is a JSON text frame `{"type": string, "payload": object, "ref"?: string | number}`.
 * A client event may carry `ref`; the server echoes it on the envelope of the direct reply
 * (and, for `ack` and `error`, inside the payload as well).
 *
 * This package has no runtime dependencies: it is shared by the server, the SDK and the page.
 * docs/protocol.md documents every item exported here; a test checks the two agree.
 */

/** A correlation id chosen by the client: a string of 1–64 characters or a safe integer. */
export type Ref = string | number;

/** A chat message as the server delivers it, live (`new_message`) or from history. */
export interface ChatMessage {
  /** Room the message was sent to. */
  room: string;
  /** Per-room sequence number, assigned by the store: 1, 2, 3… with no gaps. */
  seq: number;
  /** Authenticated user name of the sender (never taken from the client). */
  from: string;
  /** The text, exactly as sent. Render it as text, never as HTML. */
  message: string;
  /** ISO-8601 UTC time at which the server accepted the message. */
  sent: string;
}

// ---------------------------------------------------------------------------------------------
// Rooms, members and room events
// ---------------------------------------------------------------------------------------------

/**
 * Who may find and enter a room. `public`: listed by GET /rooms, anyone may join (but the banned);
 * `private`: members only, who are added by an owner or moderator (`invite`); `direct`: exactly two
 * users, one room per pair (`open_direct`), nobody else may enter.
 */
export type Visibility = 'public' | 'private' | 'direct';
/** A member's role in a room, highest first: `owner`, `moderator`, `member`. */
export type Role = 'owner' | 'moderator' | 'member';
/** Ranks of the roles: an action on another member needs a rank strictly above theirs. */
export const ROLE_RANK = { owner: 3, moderator: 2, member: 1 } as const satisfies Record<Role, number>;
export const VISIBILITIES = ['public', 'private', 'direct'] as const satisfies readonly Visibility[];
export const ROLES = ['owner', 'moderator', 'member'] as const satisfies readonly Role[];

/** One of the caller's memberships (in `welcome`, `invited`, and GET /rooms). */
export interface RoomMembership {
  room: string;
  visibility: Visibility;
  /** The room's title ('' when it has none; direct rooms have none). */
  title: string;
  role: Role;
  /** The room's latest seq when it was listed. */
  seq: number;
  /** For a direct room: the other user. */
  peer?: string;
  /** Present while the caller is muted here: `until` is when it ends (absent: until unmuted). */
  muted?: { until?: string };
}

/** A public room as `GET /rooms` lists it. */
export interface PublicRoomInfo {
  room: string;
  title: string;
  /** How many members it has. */
  members: number;
}

/** The body of `GET /rooms`: a page of public rooms (`next`: pass it as `after` for the next page), and every membership of the caller. */
export interface RoomsPage {
  rooms: PublicRoomInfo[];
  next?: string;
  mine: RoomMembership[];
}

/** A member as `GET /rooms/{room}/members` lists it. */
export interface MemberInfo {
  user: string;
  role: Role;
  muted?: { until?: string };
}

/** The body of `GET /rooms/{room}/members`: a page of members by name (`next`: the `after` of the next page). */
export interface MembersPage {
  room: string;
  members: MemberInfo[];
  next?: string;
}

/**
 * The fields of each room event: membership changes and moderation actions, stored in the room's
 * seq stream like messages (so `history` shows them and `resume` replays them, in order, on every
 * node). Each is delivered live as the server event of the same name, with `room`, `seq`, `sent`.
 */
export interface RoomEventFields {
  /** The room was made (seq 1). `members`: who it was made with (the owner; both users of a direct room). */
  room_created: { by: string; visibility: Visibility; title: string; members: string[] };
  /** `user` became a member: joined a public room, or was added by `by` (invite, open_direct). */
  member_joined: { user: string; role: Role; by?: string };
  /** `user` is no longer a member: left (no `by`), or was kicked by `by`, with an optional `reason`. */
  member_left: { user: string; by?: string; reason?: string };
  /** `by` banned `user` (removed if a member; may not join again until unbanned). */
  banned: { user: string; by: string; reason?: string };
  /** `by` lifted the ban of `user`. */
  unbanned: { user: string; by: string };
  /** `by` (an owner) gave `user` the role `role`. */
  role_changed: { user: string; role: Role; by: string };
  /** `by` muted `user`: their sends are refused (`muted`) until `until` (absent: until unmuted). */
  muted: { user: string; by: string; until?: string };
  /** `by` lifted the mute of `user`. */
  unmuted: { user: string; by: string };
}

export type RoomEventType = keyof RoomEventFields;

/** Every room event type, once (see SERVER_EVENT_TYPES). */
export const ROOM_EVENT_TYPES = {
  room_created: true,
  member_joined: true,
  member_left: true,
  banned: true,
  unbanned: true,
  role_changed: true,
  muted: true,
  unmuted: true,
} as const satisfies Record<RoomEventType, true>;

/** A room event as it travels live: the event's fields with its place in the room's stream. */
export type RoomEventPayload<T extends RoomEventType> = { room: string; seq: number; sent: string } & RoomEventFields[T];

/** A room event as `history` returns it: the live payload with its `type`. */
export type RoomEvent<T extends RoomEventType = RoomEventType> = { [K in T]: { type: K } & RoomEventPayload<K> }[T];

/** One entry of a room's seq stream: a chat message (no `type`) or a room event. */
export type TimelineItem = ChatMessage | RoomEvent;

/** True when `type` names a room event. */
export function isRoomEventType(type: unknown): type is RoomEventType {
  return typeof type === 'string' && Object.prototype.hasOwnProperty.call(ROOM_EVENT_TYPES, type);
}

/** True when the item of a room's stream is a room event (a chat message has no `type`). */
export function isRoomEvent(item: TimelineItem): item is RoomEvent {
  return 'type' in item;
}

// ---------------------------------------------------------------------------------------------
// Client → server events
// ---------------------------------------------------------------------------------------------

/** Payloads of the events a client may send, keyed by event type. */
export interface ClientEvents {
  /** Send a message to `room` (default: the current room). The room must be joined. */
  send_message: { message: string; room?: string };
  /** Leave the current room and make `name` current (followed). Other followed rooms stay. */
  change_room: { name: string };
  /** Follow one more room, in addition to those already followed. */
  join: { room: string };
  /** Stop following a room. */
  leave: { room: string };
  /** Ask for a page of a followed room's history, newest first, strictly before `before`. */
  history: { room: string; before?: number; limit?: number };
  /** After a reconnect: rejoin these rooms and replay every message after the given seq. */
  resume: { rooms: Record<string, number> };
  /** Tell the others in `room` that this user is typing. */
  typing: { room: string };
  /** Make a room owned by the caller, who follows it (answered `room_created`). `direct` rooms come from `open_direct`. */
  create_room: { room: string; visibility: 'public' | 'private'; title?: string };
  /** Add `user` as a member (owners and moderators): their connections follow the room at once. */
  invite: { room: string; user: string };
  /** Remove a member (owners and moderators, of a lower rank); they may join a public room again. */
  kick: { room: string; user: string; reason?: string };
  /** Remove a member, or anyone, for good (owners and moderators, of a lower rank) until `unban`. */
  ban: { room: string; user: string; reason?: string };
  unban: { room: string; user: string };
  /** Refuse a member's sends for `durationMs` (absent: until `unmute`). */
  mute: { room: string; user: string; durationMs?: number };
  unmute: { room: string; user: string };
  /** Give a member a role (owners only). Naming yourself hands your own role down. */
  set_role: { room: string; user: string; role: Role };
  /** The direct room of the caller and `user`, made on first use; the caller follows it (answered `direct_opened`). */
  open_direct: { user: string };
}

export type ClientEventType = keyof ClientEvents;

/** The envelope of a client event. */
export type ClientFrame<K extends ClientEventType = ClientEventType> = {
  [T in K]: { type: T; payload: ClientEvents[T]; ref?: Ref };
}[K];

// ---------------------------------------------------------------------------------------------
// Server → client events
// ---------------------------------------------------------------------------------------------

export interface Limits {
  /** Largest frame the server accepts, in bytes (bigger frames close the connection with 1009). */
  maxMessageBytes: number;
  /** Longest `message` text accepted, in characters (longer gets error `message_too_long`). */
  maxMessageChars: number;
  /** Sustained events per second allowed per connection. */
  rateLimitPerSec: number;
  /** Events a connection may send at once above the sustained rate (the token bucket's size). */
  rateLimitBurst: number;
  /** Messages per second one user may send over all connections (0 = no such limit). */
  userRateLimitPerSec: number;
  /** Largest number of rooms one connection may follow. */
  maxRoomsPerConnection: number;
  /**
   * How long the server remembers a `send_message` ref, ms: a retry within it is acked with the
   * first seq, one after it may be stored again. The SDK never retries a send past it.
   */
  dedupeWindowMs: number;
}

/** A range of seqs, both ends included. */
export interface SeqRange {
  from: number;
  to: number;
}

/** Payloads of the events the server sends, keyed by event type. */
export interface ServerEvents {
  /**
   * First frame on every connection: who the server says you are, your memberships, and its
   * limits. The connection follows every room of `rooms` (the user's memberships, the first
   * maxRoomsPerConnection of them; a user in no room is made a member of `general`), and a
   * `joined` with its seq follows for each; `room` (the current room) is `general` when it is
   * one of them, else the first. When it was opened with `/ws?otp=…&resume=1`, `room` is null and
   * it follows nothing until its `resume`.
   */
  welcome: { user: string; room: string | null; rooms: RoomMembership[]; limits: Limits; heartbeatMs: number };
  /** A message in a followed room. Sent to every connection in the room, the sender included. */
  new_message: ChatMessage;
  /** Reply to `change_room`: `name` is now the current room; `seq` is its latest seq. */
  room_changed: { name: string; seq: number };
  /** Reply to `join`: `room` is now followed; `seq` is its latest seq (0 when empty). */
  joined: { room: string; seq: number };
  /** Reply to `leave`. */
  left: { room: string };
  /**
   * Reply to `send_message` carrying a `ref`, once the message is stored (and to `invite`,
   * `kick`, `ban`, `unban`, `mute`, `unmute`, `set_role`: once their room event is stored);
   * `seq` is its place in the room.
   */
  ack: { ref: Ref; room: string; seq: number };
  /**
   * Reply to `history`: the room's stream, newest first: chat messages and room events
   * (`isRoomEvent`); `messages` is empty when there is nothing older.
   */
  history: { room: string; messages: TimelineItem[] };
  /**
   * End of a room's replay after `resume`: every message up to `seq` was sent. `recovered: false`
   * means some could not be: `missing` is the exact range of seqs not replayed (pruned by
   * retention, or older than the newest `resumeMaxMessages`); what was replayed came in order
   * around it.
   */
  resumed: { room: string; seq: number; recovered: boolean; missing?: SeqRange };
  /** Who is online in a room, sent to a connection when it joins the room. */
  presence: { room: string; users: string[] };
  /** A user's first connection joined the room. */
  user_joined: { room: string; user: string };
  /** A user's last connection left the room. */
  user_left: { room: string; user: string };
  /** Someone else in `room` is typing. */
  typing: { room: string; user: string };
  /** A client event was refused. The connection stays open. `room`: the room it was about, when one was named. */
  error: { code: ErrorCode; message: string; ref?: Ref; room?: string };
  /** The room was made (to its members; the one who made it also gets it as the reply to `create_room`). */
  room_created: RoomEventPayload<'room_created'>;
  /** Someone became a member of a room you follow. */
  member_joined: RoomEventPayload<'member_joined'>;
  /** Someone left a room you follow, or was kicked from it (`by`). */
  member_left: RoomEventPayload<'member_left'>;
  /** Someone was banned from a room you follow. */
  banned: RoomEventPayload<'banned'>;
  unbanned: RoomEventPayload<'unbanned'>;
  role_changed: RoomEventPayload<'role_changed'>;
  muted: RoomEventPayload<'muted'>;
  unmuted: RoomEventPayload<'unmuted'>;
  /**
   * To every connection of a user who was made a member (invited, a new direct room, a room they
   * made on another connection): the connection now follows the room, and a `joined` with its
   * seq follows.
   */
  invited: RoomMembership & { by: string };
  /**
   * To every connection of a user who was kicked (`ban` false) or banned from a room: it no
   * longer follows the room (nothing after `seq` reaches it), and is no longer a member.
   */
  removed: { room: string; seq: number; by: string; reason?: string; ban: boolean };
  /** Reply to `open_direct`: the direct room with `user`, now followed; `seq` is its latest seq. */
  direct_opened: { room: string; user: string; seq: number };
}

export type ServerEventType = keyof ServerEvents;

export type ServerFrame<K extends ServerEventType = ServerEventType> = {
  [T in K]: { type: T; payload: ServerEvents[T]; ref?: Ref };
}[K];

/**
 * Every server event type, once: `satisfies` makes an event added to ServerEvents fail to
 * compile here until it is listed.
 */
export const SERVER_EVENT_TYPES = {
  welcome: true,
  new_message: true,
  room_changed: true,
  joined: true,
  left: true,
  ack: true,
  history: true,
  resumed: true,
  presence: true,
  user_joined: true,
  user_left: true,
  typing: true,
  error: true,
  room_created: true,
  member_joined: true,
  member_left: true,
  banned: true,
  unbanned: true,
  role_changed: true,
  muted: true,
  unmuted: true,
  invited: true,
  removed: true,
  direct_opened: true,
} as const satisfies Record<ServerEventType, true>;

/** True when `type` names a server event (an own key of SERVER_EVENT_TYPES). */
export function isServerEventType(type: unknown): type is ServerEventType {
  return typeof type === 'string' && Object.prototype.hasOwnProperty.call(SERVER_EVENT_TYPES, type);
}

/**
 * True when `value` (a parsed JSON frame) has the envelope of a server event: an object whose
 * `type` is a server event type, whose `payload` is an object, and whose `ref`, if any, is a
 * string or a number. The payload's fields are not checked: a client trusts its server for them.
 */
export function isServerFrame(value: unknown): value is ServerFrame {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  if (!('type' in value) || !isServerEventType(value.type)) return false;
  if (!('payload' in value) || typeof value.payload !== 'object' || value.payload === null) return false;
  const ref = 'ref' in value ? value.ref : undefined;
  return ref === undefined || typeof ref === 'string' || typeof ref === 'number';
}

// ---------------------------------------------------------------------------------------------
// Error codes
// ---------------------------------------------------------------------------------------------

/**
 * Codes of `error` events on the socket. Stable: clients may switch on them.
 * The value is a one-line description, used as the default message and in the docs.
 */
export const ErrorCodes = {
  bad_json: 'The frame is not valid JSON.',
  bad_event: 'The frame is not an object with a string "type".',
  unknown_type: 'No such event type.',
  invalid_payload: 'The payload does not match the event type.',
  invalid_room: 'Room names are 1–64 characters of A–Z a–z 0–9 _ . -',
  not_in_room: 'The connection does not follow that room.',
  too_many_rooms: 'The connection follows as many rooms as it may.',
  message_too_long: 'The message text is longer than maxMessageChars.',
  rate_limited: 'Too many events; slow down.',
  unavailable: 'The message store is unavailable; the message was not accepted. Retry later.',
  shutting_down: 'The server is shutting down and did not handle this event. Reconnect and retry it.',
  forbidden: 'Not allowed: no such room, or you may not do that in it.',
  banned: 'You are banned from this room.',
  muted: 'You are muted in this room.',
  unknown_user: 'No such user.',
  room_exists: 'A room with that name exists already.',
  internal: 'Internal server error.',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/** Codes of HTTP error bodies `{"error": {"code", "message"}}`. */
export const HttpErrorCodes = {
  bad_request: [400, 'The body is not the JSON object this route expects.'],
  invalid_username: [400, 'User names are 1–32 characters of A–Z a–z 0–9 _ . -'],
  weak_password: [400, 'Passwords are at least 8 characters.'],
  unsupported_media_type: [415, 'Send the body as application/json.'],
  payload_too_large: [413, 'The request body is too large.'],
  invalid_credentials: [401, 'Unknown user or wrong password.'],
  unauthorized: [401, 'A valid "Authorization: Bearer <token>" header is required.'],
  ticket_required: [401, 'GET /ws needs ?otp=<ticket> from /login or /ticket.'],
  ticket_invalid: [401, 'The ticket is unknown, already used or expired.'],
  registration_closed: [403, 'Registration is closed on this server.'],
  origin_forbidden: [403, 'The Origin of this request is not allowed.'],
  forbidden: [403, 'No such room, or you are not a member of it.'],
  not_found: [404, 'No such route.'],
  method_not_allowed: [405, 'Method not allowed on this route.'],
  request_timeout: [408, 'The request took too long to arrive.'],
  username_taken: [409, 'That user name is taken.'],
  expectation_failed: [417, 'The only expectation supported is Expect: 100-continue.'],
  upgrade_required: [426, 'Parley speaks WebSocket version 13 (Sec-WebSocket-Version: 13).'],
  too_many_attempts: [429, 'Too many attempts; retry after the Retry-After delay.'],
  rate_limited: [429, 'Too many requests; retry after the Retry-After delay.'],
  too_many_connections: [429, 'Too many open connections for this user or address.'],
  headers_too_large: [431, 'The request line or headers are too large.'],
  unavailable: [503, 'A backend is unavailable; retry later.'],
  internal: [500, 'Internal server error.'],
} as const satisfies Record<string, readonly [number, string]>;

export type HttpErrorCode = keyof typeof HttpErrorCodes;

/** True when `code` is one of HttpErrorCodes (e.g. read from an HTTP error body). */
export function isHttpErrorCode(code: unknown): code is HttpErrorCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(HttpErrorCodes, code);
}

export interface HttpErrorBody {
  error: { code: HttpErrorCode; message: string };
}

// ---------------------------------------------------------------------------------------------
// Close codes
// ---------------------------------------------------------------------------------------------

/**
 * WebSocket close codes used by Parley.
 *
 * - 1000–1015: RFC 6455 codes.
 * - 4000–4499: Parley codes after which a client should reconnect (with backoff).
 * - 4500–4999: Parley codes that are terminal: the client must not reconnect as it is.
 */
export const CloseCodes = {
  /** Normal closure (the client closed, or the server closed after a client's close). */
  normal: 1000,
  /** The server is shutting down or restarting. Reconnect with backoff. */
  going_away: 1001,
  /** The client sent a binary frame; Parley speaks JSON text frames only. */
  unsupported_data: 1003,
  /** The client kept sending after being rate limited (flooding). */
  policy_violation: 1008,
  /** The client sent a frame larger than maxMessageBytes. */
  message_too_big: 1009,
  /** An unexpected server error. Reconnect with backoff. */
  internal_error: 1011,
  /** The client did not read fast enough: its outgoing queue overflowed. Reconnect and resume. */
  slow_consumer: 4000,
  /** The client did not answer a ping within pongTimeoutMs. Reconnect and resume. */
  heartbeat_timeout: 4001,
  /** The session (token) was revoked by logout. Log in again. */
  session_revoked: 4500,
  /** The account was removed by the operator (`parley user remove`). Do not reconnect. */
  user_removed: 4501,
} as const;

export type CloseCodeName = keyof typeof CloseCodes;
export type CloseCode = (typeof CloseCodes)[CloseCodeName];

/** True when a client should reconnect after a close with this code. */
export function isReconnectable(code: number): boolean {
  if (code >= 4500 && code <= 4999) return false;
  return code !== CloseCodes.unsupported_data && code !== CloseCodes.message_too_big && code !== CloseCodes.policy_violation;
}

// ---------------------------------------------------------------------------------------------
// Names and limits
// ---------------------------------------------------------------------------------------------

/** User names: 1–32 characters of A–Z a–z 0–9 _ . - (after NFKC, see normalizeUserName). */
export const USERNAME_PATTERN = /^[A-Za-z0-9_.-]{1,32}$/;
/** Room names: 1–64 characters of A–Z a–z 0–9 _ . - (after NFKC, see roomKey). */
export const ROOM_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * A user name as typed, in the form that is checked against USERNAME_PATTERN and stored: NFKC
 * (so fullwidth `ａｌｉｃｅ` is `alice`), or undefined when it is not a valid name. Names keep the
 * case they were registered with and compare case-insensitively: `Alice` and `alice` are one
 * user.
 */
export function normalizeUserName(raw: string): string | undefined {
  if (raw.length > 64) return undefined; // see roomKey
  const name = raw.normalize('NFKC');
  return USERNAME_PATTERN.test(name) ? name : undefined;
}

/**
 * The one name of a room: NFKC, checked against ROOM_PATTERN, then lower case (room names are
 * case-insensitive: `Design`, `design` and `ＤＥＳＩＧＮ` are one room, `design`). Undefined when
 * it is not a valid room name. The server names rooms in this form in everything it sends.
 */
export function roomKey(raw: string): string | undefined {
  // NFKC never makes a string shorter than half its UTF-16 length (an astral letter becomes one
  // ASCII letter at most): anything longer cannot be a name, and is not normalized at all.
  if (raw.length > 128) return undefined;
  const name = raw.normalize('NFKC');
  return ROOM_PATTERN.test(name) ? name.toLowerCase() : undefined;
}
export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 1024;
/** The room every new connection starts in. */
export const DEFAULT_ROOM = 'general';
/** Typing notices are passed on at most this often per user and room (the server drops extra ones; the SDK does not send them). */
export const TYPING_INTERVAL_MS = 1000;
/**
 * Names of direct rooms: `dm.` and 32 hex digits, derived from the two users. No one can make a
 * room with this prefix by `join` or `create_room`.
 */
export const DIRECT_ROOM_PREFIX = 'dm.';
/** Longest room title. */
export const MAX_TITLE_LENGTH = 100;
/** Longest `reason` of a kick or ban. */
export const MAX_REASON_LENGTH = 200;
/** Longest mute: `durationMs` is at most a year (longer: mute without a duration). */
export const MAX_MUTE_MS = 365 * 24 * 3600 * 1000;
/** Most rooms or members one GET /rooms or GET /rooms/{room}/members page returns. */
export const MAX_ROOMS_PAGE = 100;
/** Most messages one `history` page returns. */
export const MAX_HISTORY_PAGE = 100;
/**
 * Most bytes of messages (as JSON) one `history` page returns: a page stops before the message
 * that would pass it, but always holds at least one. Page on with `before` as usual.
 */
export const MAX_HISTORY_BYTES = 256 * 1024;
/** Longest `ref` string. */
export const MAX_REF_LENGTH = 64;

/** A lone (unpaired) UTF-16 surrogate: it has no UTF-8 form (text stored or hashed as UTF-8 gets U+FFFD for it). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** True when `text` is well-formed UTF-16: no lone surrogate. */
export const isWellFormedText = (text: string): boolean => !LONE_SURROGATE.test(text);

/**
 * U+0000 and lone surrogates do not survive a store: Postgres refuses NUL in text, and a lone
 * surrogate would be stored as U+FFFD, so what was broadcast would differ from what history
 * returns. Message text and string refs containing one are refused (`invalid_payload`,
 * `bad_event`). Every other code point is kept as sent.
 */
export const isStorableText = (text: string): boolean => !text.includes('\u0000') && isWellFormedText(text);
