/**
 * Presence and typing in rooms: who is online where, told to the room's members.
 *
 * Guarantees:
 * - `user_joined` goes to a room's others when a user's first connection there joins (on any
 *   node: the presence driver counts connections cluster-wide), `user_left` when the last one
 *   leaves; the joiner gets `presence` (the room's users) unless it left again meanwhile.
 * - Users of a node that died leave when their presence expires; a node cut off for longer than
 *   that brings its users back when it can refresh again (Presence.onExpired / onReturned).
 * - `typing` is passed on at most once per TYPING_INTERVAL_MS per user and room on this node,
 *   however many connections the user has open, never to the typist's own connections.
 * - A failed presence update is logged; it never fails the join or leave that caused it.
 */
import type { Logger } from 'pino';
import { TYPING_INTERVAL_MS } from '@parley/protocol';
import type { Connection } from '../connection.js';
import { encode } from '../frames.js';
import type { Presence } from '../presence/presence.js';
import type { MembershipListener, Rooms } from './rooms.js';

export class RoomPresence implements MembershipListener {
  /** When each user's last typing notice per room was passed on (`user\nroom`); swept by `sweep`. */
  private readonly typingAt = new Map<string, number>();

  constructor(
    private readonly presence: Presence,
    private readonly rooms: Rooms,
    private readonly log: Logger,
  ) {
    presence.onExpired = (room, users) => {
      for (const user of users) rooms.announce(room, encode('user_left', { room, user }));
    };
    presence.onReturned = (room, users) => {
      for (const user of users) rooms.announce(room, encode('user_joined', { room, user }));
    };
  }

  joined(conn: Connection, room: string): void {
    void this.announceJoin(conn, room);
  }

  left(conn: Connection, room: string): void {
    void this.announceLeave(conn, room);
  }

  /** `user_joined` to the others on the user's first connection, `presence` to the joiner. */
  private async announceJoin(conn: Connection, room: string): Promise<void> {
    try {
      const { first, users } = await this.presence.add(room, conn.user, conn.key);
      if (first) this.rooms.announce(room, encode('user_joined', { room, user: conn.user }), conn);
      if (conn.rooms.has(room)) conn.send('presence', { room, users });
    } catch (err) {
      this.log.warn({ err, room, user: conn.user }, 'presence update failed');
    }
  }

  /** `user_left` to the room when it was the user's last connection there. */
  private async announceLeave(conn: Connection, room: string): Promise<void> {
    try {
      if (await this.presence.remove(room, conn.user, conn.key)) this.rooms.announce(room, encode('user_left', { room, user: conn.user }));
    } catch (err) {
      this.log.warn({ err, room, user: conn.user }, 'presence update failed');
    }
  }

  /** A typing notice of `conn` in `room` (a member): passed on or dropped (see the module doc). */
  typing(conn: Connection, room: string, now = Date.now()): void {
    const key = `${conn.user.toLowerCase()}\n${room}`;
    if (now - (this.typingAt.get(key) ?? 0) < TYPING_INTERVAL_MS) return;
    this.typingAt.set(key, now);
    this.rooms.announce(room, encode('typing', { room, user: conn.user }), undefined, conn.user);
  }

  /** Forgets typing times older than the interval (called by the heartbeat). */
  sweep(now = Date.now()): void {
    for (const [k, at] of this.typingAt) if (now - at >= TYPING_INTERVAL_MS) this.typingAt.delete(k);
  }
}
