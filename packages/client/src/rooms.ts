/**
 * The rooms a client follows and its position in each: the highest seq delivered to the app.
 * A message reaches the app only above the position (never twice, in order); the position starts
 * at the join and is carried into every `resume`.
 */
import { type ChatMessage, roomKey, type ServerEvents, TYPING_INTERVAL_MS } from '@parley/protocol';

export class Rooms {
  /** Followed rooms (joined, or to be joined/resumed on the next connection). */
  readonly followed: Set<string>;
  private readonly seqs = new Map<string, number>();
  private readonly typingAt = new Map<string, number>();

  constructor(rooms: readonly string[]) {
    this.followed = new Set(rooms);
  }

  /** Highest seq delivered to the app for this room (0 if none); the room named in any form. */
  lastSeq(room: string): number {
    return this.seqs.get(roomKey(room) ?? room) ?? 0;
  }

  /** Whether the room has a position (it was joined or resumed before). */
  positioned(room: string): boolean {
    return this.seqs.has(room);
  }

  follow(room: string): void {
    this.followed.add(room);
  }

  /** Stops following a room and forgets its position. */
  unfollow(room: string): void {
    this.followed.delete(room);
    this.seqs.delete(room);
    this.typingAt.delete(room);
  }

  /** A join was refused: the room is no longer followed, unless it has a position to keep. */
  refused(room: string): void {
    if (!this.seqs.has(room)) this.followed.delete(room);
  }

  /**
   * `joined`: the position starts at the join (what came before is history, not "missed"). A room
   * already positioned keeps its position (a replay may still be running).
   */
  joined(j: ServerEvents['joined']): void {
    if (this.followed.has(j.room) && !this.seqs.has(j.room)) this.seqs.set(j.room, j.seq);
  }

  /** Whether a `new_message` goes to the app: a followed room, above its position (which moves up to it). */
  deliver(m: ChatMessage): boolean {
    if (!this.followed.has(m.room)) return false;
    const last = this.seqs.get(m.room);
    if (last !== undefined && m.seq <= last) return false; // already delivered
    this.seqs.set(m.room, m.seq);
    return true;
  }

  /** The end of a room's replay; true when it was a gap (the position jumps to the room's seq). */
  resumed(r: ServerEvents['resumed']): boolean {
    if (!this.followed.has(r.room)) return false;
    if (!r.recovered) {
      this.seqs.set(r.room, r.seq);
      return true;
    }
    if (r.seq > this.lastSeq(r.room)) this.seqs.set(r.room, r.seq);
    return false;
  }

  /** The position of every followed room that has one, for a `resume` (a null-prototype object: a room may be called __proto__). */
  positions(): Record<string, number> {
    const rooms: Record<string, number> = Object.create(null);
    for (const room of this.followed) {
      const seq = this.seqs.get(room);
      if (seq !== undefined) rooms[room] = seq;
    }
    return rooms;
  }

  /** Whether a typing notice for `room` may go now (at most one per TYPING_INTERVAL_MS); if so, it counts as sent. */
  typingDue(room: string): boolean {
    const now = Date.now();
    if (now - (this.typingAt.get(room) ?? -Infinity) < TYPING_INTERVAL_MS) return false;
    this.typingAt.set(room, now);
    return true;
  }
}
