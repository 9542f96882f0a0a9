/**
 * The store: users, sessions and message history behind one interface.
 *
 * Implementations: `sqlite.ts` (default, one file in dataDir, WAL) and `postgres.ts` (several
 * nodes sharing one database). Every implementation passes the shared contract suite in
 * test/store.contract.ts.
 *
 * Guarantees every implementation gives:
 * - appendMessages is atomic: either every message of the batch is stored, each with its seq,
 *   or none is and the call rejects with a StoreError: 'invalid' when the database refused a
 *   value of the batch (the caller can store the others without it), 'unavailable' otherwise.
 * - seq is per room, starts at 1 and grows by exactly one per stored message, across restarts
 *   and across processes sharing one database. Within a batch, messages of one room get
 *   increasing seqs in batch order.
 * - Idempotency: a message with a `ref` whose (from, ref) pair was stored before (and not yet
 *   pruned from the dedupe window) is not stored again: the result says `duplicate` and carries
 *   the original room and seq. This holds within one batch and across processes.
 * - Rooms are resources (store/membership.ts): applyMembership checks the rules and writes a
 *   change with its room events (which take the room's next seqs, like messages) in one
 *   transaction, serialized per room across processes. history and messagesAfter return the
 *   room's whole stream: messages and room events.
 */
import type { ChatMessage, TimelineItem } from '@parley/protocol';
import type { Driver } from '../driver.js';
import type { StoreFailure } from './health.js';
import type { Access, MemberRecord, MembershipOp, MembershipOutcome, MembershipRecord, PageQuery, PublicRoom } from './membership.js';

export type { StoreFailure } from './health.js';
export type { Access, MemberRecord, MembershipOp, MembershipOutcome, MembershipRecord, PageQuery, PublicRoom } from './membership.js';

export interface UserRecord {
  name: string;
  /** Encoded password hash (see auth/password.ts); never the password. */
  passwordHash: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
}

/** One `deleteUser`, as running servers learn of it. */
export interface UserRemoval {
  /** Unique, increasing with time. */
  id: number;
  /** The account's name as it was registered. */
  user: string;
  /** When it was removed, ms since the epoch. */
  at: number;
}

export interface SessionRecord {
  /** SHA-256 of the bearer token, hex. The token itself is never stored. */
  tokenHash: string;
  user: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

export interface NewMessage {
  room: string;
  from: string;
  message: string;
  /** ISO-8601 acceptance time. */
  sent: string;
  /** The client's idempotency key (`ref` of send_message, as a string), if any. */
  ref?: string | undefined;
}

/** What became of one message of a batch. */
export type Appended =
  | { duplicate: false; message: ChatMessage }
  | { duplicate: true; message: Pick<ChatMessage, 'room' | 'seq'> };

export interface PruneQuery {
  /** Delete messages accepted before this time (ms since the epoch). */
  olderThan?: number | undefined;
  /** Keep at most this many newest messages per room. */
  maxPerRoom?: number | undefined;
  /** Delete dedupe entries recorded before this time (ms since the epoch). */
  dedupeOlderThan: number;
  /** Delete at most this many rows per call (the caller loops, yielding between calls). */
  limit: number;
}

export interface HistoryQuery {
  /** Only messages with seq < before (default: from the newest). */
  before?: number | undefined;
  /** At most this many (1..MAX_HISTORY_PAGE). */
  limit: number;
}

/**
 * - `conflict`: a unique key is taken (a user name).
 * - `invalid`: the database refused this data (a value it cannot keep); retrying cannot help,
 *   and other data is not affected.
 * - `unavailable`: the database cannot be reached or cannot write now; retry later.
 */
export type StoreErrorCode = 'conflict' | 'invalid' | 'unavailable';

export class StoreError extends Error {
  /**
   * For `unavailable`: the backend's code when the database could not write or could not be
   * reached (`SQLITE_FULL`, `SQLITE_READONLY`, `53100`, `ECONNREFUSED`, `query_timeout`…). Such
   * a failure is an outage the store reports itself (`healthy`, `failure`, /readyz; drivers.ts
   * logs it once, then a summary every 10 s): whoever gets the error need not log it.
   * Undefined for any other failure.
   */
  readonly backend: string | undefined;

  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown; backend?: string | undefined },
  ) {
    super(message, options);
    this.name = 'StoreError';
    this.backend = options?.backend;
  }
}

/**
 * `onBackgroundError` (set by the server, to log them): failures of the store's own background
 * work, which no request sees. SQLite: its checkpointer thread. Postgres: an idle pooled
 * connection lost (the pool replaces it).
 *
 * `healthy`: the store is open (init resolved, not closed) and can write: the first write that
 * fails with a backend error (StoreError.backend) makes it false, and only a write that
 * succeeds makes it true again; a write probe runs every second meanwhile (store/health.ts),
 * so it comes back without traffic. `onHealth` is called on each change, `failure` says why.
 * /readyz also makes a round trip to the database (`ping`) while it is healthy.
 */
export interface Store extends Driver {
  /** Why the store cannot write, while it cannot (undefined while it can, or is closed). */
  readonly failure: StoreFailure | undefined;

  /** Opens the database and applies pending migrations. */
  init(): Promise<void>;

  /**
   * Rejects with StoreError('conflict') when the name is taken, by an account or by one that
   * was removed (see deleteUser). Names compare case-insensitively.
   */
  createUser(name: string, passwordHash: string): Promise<void>;
  /** Whether `name` is taken (case-insensitively), by an account or by a removed one. */
  nameTaken(name: string): Promise<boolean>;
  /** An account by name (case-insensitively); undefined for unknown and removed ones. */
  getUser(name: string): Promise<UserRecord | undefined>;
  /** Every account, removed ones left out. */
  listUsers(): Promise<UserRecord[]>;
  /**
   * Removes an account: its sessions are deleted and its password forgotten, so nothing of it
   * authenticates any more; its name stays reserved for good (createUser refuses it), so that
   * no later account appears as the author of its messages; and the removal is recorded for
   * running servers (userRemovalsSince), which close the user's sockets. Atomic. Resolves false
   * when there was no such account.
   */
  deleteUser(name: string): Promise<boolean>;
  /** Removals recorded at or after `since` (ms since the epoch), oldest first. */
  userRemovalsSince(since: number): Promise<UserRemoval[]>;

  createSession(session: SessionRecord): Promise<void>;
  /** Resolves undefined for unknown or expired sessions. */
  getSession(tokenHash: string, now: number): Promise<SessionRecord | undefined>;
  /** Resolves false when there was no such session. */
  deleteSession(tokenHash: string): Promise<boolean>;
  /** Deletes sessions that expired before `now`; resolves how many. */
  deleteExpiredSessions(now: number): Promise<number>;

  /** Stores a batch atomically, assigning per-room seqs in batch order (see the module doc). */
  appendMessages(batch: readonly NewMessage[]): Promise<Appended[]>;
  /** The latest seq of a room, 0 when it has none. */
  lastSeq(room: string): Promise<number>;
  /**
   * The latest seq of each of `rooms` that has messages, in one query (the feeds' periodic
   * catch-up: how a node notices a publication it never got). Rooms without any are left out.
   */
  lastSeqs(rooms: readonly string[]): Promise<Map<string, number>>;
  /** Where the message stored with this (from, ref) went, if it is still in the dedupe window. */
  findRef(from: string, ref: string): Promise<Pick<ChatMessage, 'room' | 'seq'> | undefined>;
  /** A page of the room's stream (messages and room events), newest first. */
  history(room: string, query: HistoryQuery): Promise<TimelineItem[]>;
  /** The room's stream after `after`, oldest first, at most `limit` (for resume and gap fills). */
  messagesAfter(room: string, after: number, limit: number): Promise<TimelineItem[]>;

  /**
   * Checks and applies a change of membership with its room events, atomically (see
   * store/membership.ts): a refusal changes nothing. Rejects only with a StoreError.
   */
  applyMembership(op: MembershipOp): Promise<MembershipOutcome>;
  /** `user`'s standing in each of `rooms` that exists (case-insensitive user; rooms by their one name). */
  roomsAccess(user: string, rooms: readonly string[]): Promise<Map<string, Access>>;
  /** `user`'s memberships, oldest first, at most `limit`. */
  membershipsOf(user: string, limit: number): Promise<MembershipRecord[]>;
  /** Members of a room by name (case-insensitively), a page after `after`. */
  roomMembers(room: string, page: PageQuery): Promise<MemberRecord[]>;
  /** Public rooms by name, a page after `after`; `q`: only those whose name or title contains it (case-insensitively). */
  publicRooms(q: string | undefined, page: PageQuery): Promise<PublicRoom[]>;
  /** Deletes up to `limit` rows past retention; resolves how many were deleted. */
  prune(query: PruneQuery): Promise<number>;
  /** Cheap round trip to the database, for readiness checks. Rejects when unavailable. */
  ping(): Promise<void>;
}
