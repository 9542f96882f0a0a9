/**
 * Members: the unit between the handlers and the store's rooms (store/membership.ts). It applies
 * changes of membership, hands their room events to the rooms here and on the other nodes, makes
 * connections follow rooms their user may follow, and keeps each node's connections in line with
 * the stored memberships.
 *
 * Guarantees:
 * - A connection follows a room only while its user is a member (following ⇒ member): it is made
 *   to follow by `follow` after the store said so, and a removal (member_left, banned) stops every
 *   connection of the user following the room on every node, in the room's seq order, before
 *   anything after it is delivered (the RoomEventHook runs in the feed's order; the feed's
 *   catch-up brings the event even when the broker loses it).
 * - A new membership (invite, a new direct room, a join on another connection) makes the user's
 *   open connections follow the room (`invited`, then `joined` with its seq), on every node. This
 *   notice travels over the broker only: a connection that misses it lists the room at its next
 *   connect (`welcome`).
 * - Mutes are known to the connections that follow the room (from the store when they start
 *   following, then from the muted/unmuted events), so a send from a muted member costs no store read.
 */
import type { Logger } from 'pino';
import { DIRECT_ROOM_PREFIX, type RoomEvent, type RoomMembership, type ServerEvents } from '@parley/protocol';
import { createHash } from 'node:crypto';
import type { Connection } from '../connection.js';
import { type Access, isMuted, type MembershipOp, type MembershipOutcome, MUTED_FOR_GOOD, NO_SUCH_ROOM } from '../store/membership.js';
import type { Store } from '../store/store.js';
import type { ClusterLink } from './cluster.js';
import { ClientError } from './errors.js';
import type { Rooms } from './rooms.js';

/** The one name of the direct room of two users: the same for (a, b) and (b, a), on every node. */
export function directRoomName(a: string, b: string): string {
  const [x, y] = [a.toLowerCase(), b.toLowerCase()].sort();
  return DIRECT_ROOM_PREFIX + createHash('sha256').update(`${x}\n${y}`).digest('hex').slice(0, 32);
}

export class Members {
  /** Rooms each connection is leaving (its own `leave` answers it, not the hook). */
  private readonly leaving = new WeakMap<Connection, Set<string>>();
  /** Each connection's joins and resumes still asking the store whether it may follow. */
  private readonly entries = new WeakMap<Connection, Set<Promise<unknown>>>();

  constructor(
    private readonly store: Store,
    private readonly rooms: Rooms,
    private readonly link: ClusterLink,
    private readonly log: Logger,
    /** The open connections of a user on this node. */
    private readonly connectionsOf: (user: string) => Iterable<Connection>,
    private readonly maxRooms: number,
    /** Answers a new follow with `joined {room, seq}` (handlers/rooms.ts replyWithSeq). */
    private readonly announceJoin: (conn: Connection, room: string) => void,
  ) {
    rooms.onRoomEvent((e, members) => this.onEvent(e, members));
  }

  /** Applies a change; its events go to this node's rooms and to the other nodes. */
  async apply(op: MembershipOp): Promise<MembershipOutcome> {
    const out = await this.store.applyMembership(op);
    if (out.ok) {
      for (const e of out.events) {
        this.rooms.accept(e, true);
        this.link.message(e);
      }
    }
    return out;
  }

  /** Like `apply`, but a refusal throws its ClientError (naming the room). */
  async must(op: MembershipOp): Promise<Extract<MembershipOutcome, { ok: true }>> {
    const out = await this.apply(op);
    if (!out.ok) throw new ClientError(out.code, out.message, op.room);
    return out;
  }

  /** `user`'s standing in `room`, or undefined when there is no such room. */
  async access(user: string, room: string): Promise<Access | undefined> {
    return (await this.store.roomsAccess(user, [room])).get(room);
  }

  /**
   * Tracks a join or resume of `conn` while it asks the store (see `settled`). A client may send
   * `join` and then at once a `send_message` to the room: the send waits for the join.
   */
  entry<T>(conn: Connection, p: Promise<T>): Promise<T> {
    let mine = this.entries.get(conn);
    if (mine === undefined) this.entries.set(conn, (mine = new Set()));
    const set = mine;
    set.add(p);
    const done = () => void set.delete(p);
    p.then(done, done);
    return p;
  }

  /** Whether joins or resumes of `conn` are still asking the store. */
  entering(conn: Connection): boolean {
    return (this.entries.get(conn)?.size ?? 0) > 0;
  }

  /** Resolves once the joins and resumes `conn` sent before now have settled. */
  async settled(conn: Connection): Promise<void> {
    const mine = this.entries.get(conn);
    if (mine !== undefined && mine.size > 0) await Promise.allSettled([...mine]);
  }

  /** `room`, once `conn` follows it (after its pending joins); else the error notFollowed says. */
  async followed(conn: Connection, room: string): Promise<void> {
    if (conn.rooms.has(room)) return;
    await this.settled(conn);
    if (!conn.rooms.has(room)) throw await this.notFollowed(conn, room);
  }

  /** The error for an event about a room the connection does not follow: not_in_room if it could, else the one NO_SUCH_ROOM. */
  async notFollowed(conn: Connection, room: string): Promise<ClientError> {
    const a = await this.access(conn.user, room);
    if (a !== undefined && !a.banned && (a.member !== undefined || a.visibility === 'public')) return new ClientError('not_in_room', `Not in room "${room}".`, room);
    return new ClientError('forbidden', NO_SUCH_ROOM, room);
  }

  /** Makes `conn` follow `room`, whose member its user is (muted until `mutedUntil`, or not). */
  follow(conn: Connection, room: string, mutedUntil: number | null): void {
    this.setMute(conn, room, mutedUntil);
    this.rooms.join(conn, room);
  }

  /** Refuses (too_many_rooms) when `conn` may not follow one more room: checked again after every await, since joins run concurrently. */
  roomFor(conn: Connection, room: string, spare = 0): void {
    if (!conn.rooms.has(room) && conn.rooms.size >= this.maxRooms + spare) throw new ClientError('too_many_rooms', undefined, room);
  }

  /**
   * Makes `conn` follow `room` as `join` does: a member follows; a public room is joined (or, with
   * `create`, a name no room has becomes a public room owned by the user); anything else is
   * refused (`forbidden`, `banned`). With `tell`, the user's other open connections follow a new
   * membership too (`join`; not `change_room`, which moves one connection between rooms).
   * `spare`: rooms the caller will leave right after (change_room leaves the current one).
   */
  enter(conn: Connection, room: string, create: boolean, opts: { spare?: number; tell?: boolean } = {}): Promise<void> {
    return this.entry(conn, this.enterNow(conn, room, create, opts.spare ?? 0, opts.tell ?? true));
  }

  private async enterNow(conn: Connection, room: string, create: boolean, spare: number, tell: boolean): Promise<void> {
    const a = await this.access(conn.user, room);
    if (a?.member !== undefined) {
      this.roomFor(conn, room, spare);
      if (conn.open) this.follow(conn, room, a.member.mutedUntil);
      return;
    }
    if (a !== undefined && a.visibility !== 'public') throw new ClientError('forbidden', NO_SUCH_ROOM, room);
    const reserved = room.startsWith(DIRECT_ROOM_PREFIX);
    const out = await this.must({ type: 'join', room, user: conn.user, create: create && !reserved });
    this.roomFor(conn, room, spare); // a member now all the same: listed at the next connect
    if (conn.open) this.follow(conn, room, out.member?.mutedUntil ?? null);
    if (tell && out.events.length > 0 && out.member !== undefined) {
      this.invited(out.member.user, { ...this.membershipOf(out, out.member.role), by: conn.user }, conn);
    }
  }

  /**
   * Ends the membership of `conn`'s user in `room` (refused for the last owner of a room with
   * other members). Every other connection of the user stops following it with a `left`.
   */
  async leave(conn: Connection, room: string): Promise<void> {
    let mine = this.leaving.get(conn);
    if (mine === undefined) this.leaving.set(conn, (mine = new Set()));
    mine.add(room);
    try {
      await this.must({ type: 'leave', room, user: conn.user });
    } finally {
      mine.delete(room);
    }
    conn.mutes?.delete(room);
    this.rooms.leave(conn, room);
  }

  /** The membership a successful change gave, as `invited` lists it. */
  membershipOf(out: Extract<MembershipOutcome, { ok: true }>, role: RoomMembership['role'], peer?: string): RoomMembership {
    const m: RoomMembership = { room: out.room.name, visibility: out.room.visibility, title: out.room.title, role, seq: out.room.lastSeq };
    if (peer !== undefined) m.peer = peer;
    return m;
  }

  /** `user` is a member of a room now: their connections here and on every node follow it (but `except`). */
  invited(user: string, invited: ServerEvents['invited'], except?: Connection): void {
    this.invitedHere(user, invited, except);
    this.link.invited(user, invited);
  }

  /** The part of `invited` on this node (also what another node's notice does here). */
  invitedHere(user: string, invited: ServerEvents['invited'], except?: Connection): void {
    for (const conn of this.connectionsOf(user)) {
      if (conn === except || !conn.open || conn.rooms.has(invited.room)) continue;
      conn.send('invited', invited);
      // Past the cap the membership is only listed (the client may leave another room first).
      if (conn.rooms.size >= this.maxRooms) continue;
      this.follow(conn, invited.room, null);
      this.announceJoin(conn, invited.room);
    }
  }

  private setMute(conn: Connection, room: string, mutedUntil: number | null): void {
    if (mutedUntil !== null && isMuted(mutedUntil, Date.now())) (conn.mutes ??= new Map()).set(room, mutedUntil);
    else conn.mutes?.delete(room);
  }

  /** Until when `conn` is muted in `room` (a room it follows), or undefined. */
  mutedUntil(conn: Connection, room: string, now = Date.now()): number | undefined {
    const until = conn.mutes?.get(room);
    if (until === undefined) return undefined;
    if (until > now) return until;
    conn.mutes?.delete(room);
    return undefined;
  }

  /** The RoomEventHook: keeps this node's connections in line with the event (see the module doc). */
  private onEvent(e: RoomEvent, members: ReadonlySet<Connection>): void {
    switch (e.type) {
      case 'member_left':
      case 'banned': {
        const key = e.user.toLowerCase();
        const theirs = [...members].filter((c) => c.user.toLowerCase() === key && !(e.type === 'member_left' && this.leaving.get(c)?.has(e.room) === true));
        for (const conn of theirs) {
          if (e.type === 'banned') conn.send('removed', e.reason === undefined ? { room: e.room, seq: e.seq, by: e.by, ban: true } : { room: e.room, seq: e.seq, by: e.by, reason: e.reason, ban: true });
          else if (e.by !== undefined) conn.send('removed', e.reason === undefined ? { room: e.room, seq: e.seq, by: e.by, ban: false } : { room: e.room, seq: e.seq, by: e.by, reason: e.reason, ban: false });
          else conn.send('left', { room: e.room });
          conn.mutes?.delete(e.room);
          this.rooms.leave(conn, e.room);
        }
        return;
      }
      case 'muted':
      case 'unmuted': {
        const key = e.user.toLowerCase();
        const until = e.type === 'unmuted' ? null : e.until === undefined ? MUTED_FOR_GOOD : Date.parse(e.until);
        for (const conn of members) if (conn.user.toLowerCase() === key) this.setMute(conn, e.room, until);
        return;
      }
      case 'room_created':
      case 'member_joined':
      case 'unbanned':
      case 'role_changed':
        return;
      default: {
        const never: never = e;
        this.log.warn({ event: never }, 'unknown room event');
      }
    }
  }
}
