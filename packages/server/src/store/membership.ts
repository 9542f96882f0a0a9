/**
 * Rooms as resources: their members, roles, bans and mutes, and the rules every change obeys.
 *
 * Both stores keep the same tables (rooms' visibility and title, `members`, `bans`) and run every
 * change as one `applyMembership` transaction: they read the state the rules need (`OpState`),
 * ask `decide` (here, shared, pure), then write its changes and append its room events to the
 * room's seq stream in that same transaction. So a change and its event commit together, the
 * rules are the same on every store, and two nodes changing one room are serialized by the
 * store (a per-room lock), never by the broker.
 *
 * The rules (docs/protocol.md, "Rooms and members"):
 * - Ranks: owner > moderator > member. Owners and moderators invite, kick, ban, unban, mute and
 *   unmute; owners set roles. An action on another member needs a rank strictly above theirs
 *   (so nobody acts on someone of higher or equal rank, and an owner cannot demote another).
 * - The last owner of a room with other members can neither leave nor hand their role down.
 * - Public rooms are joined by anyone not banned; private rooms only by invitation; direct rooms
 *   have exactly their two users, and no moderation.
 * - A non-member of a private or direct room learns nothing: every refusal to them is the one
 *   NO_SUCH_ROOM answer, as for a room that does not exist.
 */
import { type ChatMessage, type RoomMembership, ErrorCodes, isRoomEventType, type Role, ROLE_RANK, type RoomEvent, type RoomEventFields, type RoomEventType, type TimelineItem, type Visibility } from '@parley/protocol';

/** A mute without a duration lasts until unmuted: stored as this `mutedUntil`. */
export const MUTED_FOR_GOOD = Number.MAX_SAFE_INTEGER;

export interface RoomRecord {
  name: string;
  visibility: Visibility;
  title: string;
  lastSeq: number;
}

export interface MemberRecord {
  /** The user's name as registered. */
  user: string;
  role: Role;
  /** Muted until this time (ms since the epoch; MUTED_FOR_GOOD: until unmuted), or null. */
  mutedUntil: number | null;
  /** When the membership began, ms since the epoch. */
  joinedAt: number;
}

/** A user's standing in one room: what every access check reads. */
export interface Access {
  visibility: Visibility;
  title: string;
  lastSeq: number;
  /** The user's membership, if they are a member. */
  member: MemberRecord | undefined;
  banned: boolean;
}

/** One of a user's memberships, with what a client lists it with (welcome, GET /rooms). */
export interface MembershipRecord {
  room: string;
  visibility: Visibility;
  title: string;
  role: Role;
  mutedUntil: number | null;
  lastSeq: number;
  /** For a direct room: the other member. */
  peer: string | undefined;
}

/** A public room as GET /rooms lists it. */
export interface PublicRoom {
  room: string;
  title: string;
  members: number;
}

export interface PageQuery {
  /** Only names sorting after this (the previous page's last). */
  after?: string | undefined;
  limit: number;
}

/**
 * A change of membership, as a handler asks for it. Users are matched case-insensitively; a new
 * member is stored under the name given (the hub gives names as registered: store.getUser).
 */
export type MembershipOp =
  /**
   * Join a room; with `create`, a name no room has makes a public room owned by `user` (with
   * `unowned`, one owned by nobody: the server's own `general`).
   */
  | { type: 'join'; room: string; user: string; create: boolean; unowned?: boolean }
  | { type: 'create'; room: string; user: string; visibility: 'public' | 'private'; title: string }
  /** The direct room of `user` and `peer`: made, or both made members again. */
  | { type: 'direct'; room: string; user: string; peer: string }
  | { type: 'leave'; room: string; user: string }
  | { type: 'invite'; room: string; by: string; user: string }
  | { type: 'kick'; room: string; by: string; user: string; reason?: string | undefined }
  | { type: 'ban'; room: string; by: string; user: string; reason?: string | undefined }
  | { type: 'unban'; room: string; by: string; user: string }
  /** `until`: ms since the epoch, or MUTED_FOR_GOOD. */
  | { type: 'mute'; room: string; by: string; user: string; until: number }
  | { type: 'unmute'; room: string; by: string; user: string }
  | { type: 'set_role'; room: string; by: string; user: string; role: Role }
  /** The operator (`parley room role`): `user` gets `role`, made a member if need be, with no rank checked. */
  | { type: 'grant'; room: string; user: string; role: Role };

/** Who the room events of an operator's `grant` name as `by`: no user can have this name. */
export const OPERATOR = '(operator)';

/** The user an op is done by (the actor). */
export const actorOf = (op: MembershipOp): string => ('by' in op ? op.by : op.user);
/** The other user an op is about, if any. */
export const targetOf = (op: MembershipOp): string | undefined => ('by' in op ? op.user : op.type === 'direct' ? op.peer : op.type === 'grant' ? op.user : undefined);

/** A room event before the store gives it its place (room, seq, sent). */
export type RoomEventDraft = { [K in RoomEventType]: { type: K } & RoomEventFields[K] }[RoomEventType];

/** What the store read, inside the transaction, for `decide`. */
export interface OpState {
  room: RoomRecord | undefined;
  actor: MemberRecord | undefined;
  target: MemberRecord | undefined;
  /** Whether the user who would join (join) or the target (the others) is banned. */
  banned: boolean;
  /** Members of the room, and how many of them are owners. */
  members: number;
  owners: number;
}

/** A write `decide` asks for, in order. */
export type Change =
  | { type: 'room'; visibility: Visibility; title: string; by: string }
  | { type: 'member'; user: string; role: Role; mutedUntil: number | null }
  | { type: 'unmember'; user: string }
  | { type: 'ban'; user: string; by: string; reason: string | undefined }
  | { type: 'unban'; user: string };

export type RefusalCode = 'forbidden' | 'banned' | 'room_exists';

export type Decision = { ok: true; changes: Change[]; events: RoomEventDraft[] } | { ok: false; code: RefusalCode; message: string };

/** The one answer to a non-member of a private or direct room, and for a room that does not exist. */
export const NO_SUCH_ROOM = ErrorCodes.forbidden;

const refuse = (message: string, code: RefusalCode = 'forbidden'): Decision => ({ ok: false, code, message });
const nothing: Decision = { ok: true, changes: [], events: [] };
const rank = (m: MemberRecord | undefined): number => (m === undefined ? 0 : ROLE_RANK[m.role]);
/** Drops the optional fields that are undefined (exactOptionalPropertyTypes). */
const withReason = <T extends object>(fields: T, reason: string | undefined): T & { reason?: string } => (reason === undefined ? fields : { ...fields, reason });

/** `LIKE` pattern matching `q` anywhere (lower-cased), its own `%`, `_` and `\` taken literally (ESCAPE '\'). */
export const containing = (q: string): string => `%${q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** Whether a member is muted at `now`. */
export const isMuted = (mutedUntil: number | null, now: number): boolean => mutedUntil !== null && mutedUntil > now;

/** A mute as clients see it (`{}`: until unmuted), or undefined when not muted at `now`. */
export function wireMute(mutedUntil: number | null, now: number): { until?: string } | undefined {
  if (mutedUntil === null || !isMuted(mutedUntil, now)) return undefined;
  return mutedUntil === MUTED_FOR_GOOD ? {} : { until: new Date(mutedUntil).toISOString() };
}

/** A membership as clients see it (welcome, invited, GET /rooms). */
export function wireMembership(m: MembershipRecord, now = Date.now()): RoomMembership {
  const out: RoomMembership = { room: m.room, visibility: m.visibility, title: m.title, role: m.role, seq: m.lastSeq };
  if (m.peer !== undefined) out.peer = m.peer;
  const muted = wireMute(m.mutedUntil, now);
  if (muted !== undefined) out.muted = muted;
  return out;
}

/** What an op does to the room given its state (see the module doc), or why it is refused. */
export function decide(op: MembershipOp, s: OpState, now: number): Decision {
  const room = s.room;
  const actor = actorOf(op);
  switch (op.type) {
    case 'join': {
      if (room === undefined) {
        if (!op.create) return refuse(NO_SUCH_ROOM);
        const role = op.unowned === true ? 'member' : 'owner';
        return {
          ok: true,
          changes: [{ type: 'room', visibility: 'public', title: '', by: actor }, { type: 'member', user: actor, role, mutedUntil: null }],
          events: [{ type: 'room_created', by: op.unowned === true ? OPERATOR : actor, visibility: 'public', title: '', members: [actor] }],
        };
      }
      if (s.actor !== undefined) return nothing;
      if (room.visibility !== 'public') return refuse(NO_SUCH_ROOM);
      if (s.banned) return refuse(ErrorCodes.banned, 'banned');
      return { ok: true, changes: [{ type: 'member', user: actor, role: 'member', mutedUntil: null }], events: [{ type: 'member_joined', user: actor, role: 'member' }] };
    }
    case 'create': {
      if (room !== undefined) return refuse(ErrorCodes.room_exists, 'room_exists');
      return {
        ok: true,
        changes: [{ type: 'room', visibility: op.visibility, title: op.title, by: actor }, { type: 'member', user: actor, role: 'owner', mutedUntil: null }],
        events: [{ type: 'room_created', by: actor, visibility: op.visibility, title: op.title, members: [actor] }],
      };
    }
    case 'direct': {
      const peer = s.target?.user ?? op.peer;
      if (room === undefined) {
        return {
          ok: true,
          changes: [
            { type: 'room', visibility: 'direct', title: '', by: actor },
            { type: 'member', user: actor, role: 'member', mutedUntil: null },
            { type: 'member', user: peer, role: 'member', mutedUntil: null },
          ],
          events: [{ type: 'room_created', by: actor, visibility: 'direct', title: '', members: [actor, peer] }],
        };
      }
      if (room.visibility !== 'direct') return refuse(NO_SUCH_ROOM);
      const out: { ok: true; changes: Change[]; events: RoomEventDraft[] } = { ok: true, changes: [], events: [] };
      for (const [member, user] of [[s.actor, actor] as const, [s.target, peer] as const]) {
        if (member !== undefined) continue;
        out.changes.push({ type: 'member', user, role: 'member', mutedUntil: null });
        out.events.push({ type: 'member_joined', user, role: 'member', by: actor });
      }
      return out;
    }
    case 'leave': {
      if (room === undefined || s.actor === undefined) return refuse(NO_SUCH_ROOM);
      if (s.actor.role === 'owner' && s.owners === 1 && s.members > 1) {
        return refuse('You are the last owner of this room: give another member the owner role first (set_role).');
      }
      return { ok: true, changes: [{ type: 'unmember', user: s.actor.user }], events: [{ type: 'member_left', user: s.actor.user }] };
    }
    case 'grant': {
      if (room === undefined) return refuse(NO_SUCH_ROOM);
      if (room.visibility === 'direct') return refuse('A direct room has no roles to give.');
      const t = s.target;
      if (t === undefined) {
        // The operator's word lifts a ban too: nobody is both banned and a member.
        const changes: Change[] = s.banned ? [{ type: 'unban', user: op.user }] : [];
        const events: RoomEventDraft[] = s.banned ? [{ type: 'unbanned', user: op.user, by: OPERATOR }] : [];
        changes.push({ type: 'member', user: op.user, role: op.role, mutedUntil: null });
        events.push({ type: 'member_joined', user: op.user, role: op.role, by: OPERATOR });
        return { ok: true, changes, events };
      }
      if (t.role === op.role) return nothing;
      return { ok: true, changes: [{ type: 'member', user: t.user, role: op.role, mutedUntil: t.mutedUntil }], events: [{ type: 'role_changed', user: t.user, role: op.role, by: OPERATOR }] };
    }
    default:
      return moderate(op, s, now);
  }
}

/** invite, kick, ban, unban, mute, unmute, set_role. */
function moderate(op: Extract<MembershipOp, { by: string }>, s: OpState, now: number): Decision {
  const room = s.room;
  // A non-member of a private or direct room, or no such room: the one answer.
  if (room === undefined || (room.visibility !== 'public' && s.actor === undefined)) return refuse(NO_SUCH_ROOM);
  if (room.visibility === 'direct') return refuse('A direct room has exactly its two members: nobody can be added, removed or moderated.');
  const by = s.actor;
  const needed = op.type === 'set_role' ? 'owner' : 'moderator';
  if (by === undefined || rank(by) < ROLE_RANK[needed]) {
    return refuse(op.type === 'set_role' ? 'Only owners set roles.' : 'Only owners and moderators can do that.');
  }
  const target = s.target;
  const user = target?.user ?? op.user.slice(0, 64);
  const self = target !== undefined && target.user.toLowerCase() === by.user.toLowerCase();
  // Acting on someone of equal or higher rank is refused (yourself included, but for set_role).
  const outranked = target !== undefined && rank(target) >= rank(by) && !(op.type === 'set_role' && self);
  if (outranked) return refuse(`${user} is a ${target.role}: you can only act on members below your own rank.`);
  switch (op.type) {
    case 'invite':
      if (target !== undefined) return nothing;
      if (s.banned) return refuse(`${user} is banned from this room: unban them first.`);
      return { ok: true, changes: [{ type: 'member', user, role: 'member', mutedUntil: null }], events: [{ type: 'member_joined', user, role: 'member', by: by.user }] };
    case 'kick':
      if (target === undefined) return refuse(`${user} is not a member of this room.`);
      return { ok: true, changes: [{ type: 'unmember', user }], events: [withReason({ type: 'member_left' as const, user, by: by.user }, op.reason)] };
    case 'ban': {
      if (s.banned && target === undefined) return nothing;
      const changes: Change[] = target === undefined ? [] : [{ type: 'unmember', user }];
      changes.push({ type: 'ban', user, by: by.user, reason: op.reason });
      return { ok: true, changes, events: [withReason({ type: 'banned' as const, user, by: by.user }, op.reason)] };
    }
    case 'unban':
      if (!s.banned) return nothing;
      return { ok: true, changes: [{ type: 'unban', user }], events: [{ type: 'unbanned', user, by: by.user }] };
    case 'mute': {
      if (target === undefined) return refuse(`${user} is not a member of this room.`);
      const until = op.until;
      return {
        ok: true,
        changes: [{ type: 'member', user, role: target.role, mutedUntil: until }],
        events: [until === MUTED_FOR_GOOD ? { type: 'muted', user, by: by.user } : { type: 'muted', user, by: by.user, until: new Date(until).toISOString() }],
      };
    }
    case 'unmute':
      if (target === undefined) return refuse(`${user} is not a member of this room.`);
      if (!isMuted(target.mutedUntil, now)) return nothing;
      return { ok: true, changes: [{ type: 'member', user, role: target.role, mutedUntil: null }], events: [{ type: 'unmuted', user, by: by.user }] };
    case 'set_role': {
      if (target === undefined) return refuse(`${user} is not a member of this room.`);
      if (target.role === op.role) return nothing;
      if (self && s.owners === 1) return refuse('You are the last owner of this room: give another member the owner role first.');
      return { ok: true, changes: [{ type: 'member', user, role: op.role, mutedUntil: target.mutedUntil }], events: [{ type: 'role_changed', user, role: op.role, by: by.user }] };
    }
    default: {
      const never: never = op;
      return never;
    }
  }
}

/** The outcome of applyMembership: the events stored (with their seqs), or the refusal. */
export type MembershipOutcome =
  | {
      ok: true;
      /** The room after the change. */
      room: RoomRecord;
      /** The events appended to the room's stream, in seq order (none: nothing changed). */
      events: RoomEvent[];
      /** The acting user's membership after the change (undefined: not a member). */
      member: MemberRecord | undefined;
    }
  | { ok: false; code: RefusalCode; message: string };

/** The stored form of an event: `sender` (the actor), `body` (its fields as JSON), `kind` (its type). */
export function eventRow(e: RoomEventDraft): { sender: string; body: string; kind: RoomEventType } {
  const { type, ...fields } = e;
  return { sender: e.type === 'room_created' ? e.by : (e.by ?? e.user), body: JSON.stringify(fields), kind: type };
}

/** A row of the `messages` table (both stores): a chat message when `kind` is null, else a room event. */
export interface StreamRow {
  room: string;
  seq: number;
  sender: string;
  body: string;
  sent: string;
  kind: string | null;
}

/** The item a stored row is: a chat message, or the room event its kind and body describe. */
export function itemOf(r: StreamRow): TimelineItem {
  if (r.kind === null || !isRoomEventType(r.kind)) {
    const m: ChatMessage = { room: r.room, seq: r.seq, from: r.sender, message: r.body, sent: r.sent };
    return m;
  }
  // The body was written by eventRow from a typed draft of this kind.
  const event: RoomEvent = { ...JSON.parse(r.body), type: r.kind, room: r.room, seq: r.seq, sent: r.sent };
  return event;
}

/** The events of a decision, given their place: seqs from `first` on, at `sent`. */
export function placed(room: string, drafts: readonly RoomEventDraft[], first: number, sent: string): RoomEvent[] {
  return drafts.map((d, i) => ({ ...d, room, seq: first + i, sent }));
}
