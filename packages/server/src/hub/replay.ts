/**
 * The replay buffer of one connection: what makes a `resume` lose nothing and double nothing.
 *
 * While a room is being replayed from the store, the room's live messages for this connection
 * are held here (in seq order, as the room's feed delivers them) instead of being written; when
 * the store part is sent, the held ones newer than it follow, and the room is finished: from then
 * on, live copies at or below the seq the replay reached are skipped once (they may still be on
 * their way through the feed), everything newer is written as usual.
 *
 * Guarantees:
 * - Every live frame offered while a room replays is either held (and later handed back by
 *   `held`) or refused as an overflow; none is written around the replay.
 * - After `finish(room, seq)`, a live frame of that room with a seq at or below `seq` is skipped;
 *   the first one above it ends the skipping for the room.
 * - Held frames count against the connection's send queue: `offer` refuses (`overflow`) a frame
 *   that would bring held bytes plus unsent bytes past `maxBytes`; the caller closes the
 *   connection (slow consumer) and calls `drop`.
 *
 * One per connection, created by the first `resume`; it holds nothing a Connection needs to know.
 */

import type { ReplayState } from '../connection.js';

export interface HeldFrame {
  readonly seq: number;
  readonly data: Buffer;
}

/** What to do with one live frame of a room for this connection. */
export type Offer = ReturnType<ReplayState['offer']>;

export class ReplayBuffer implements ReplayState {
  /** Rooms being replayed: their live frames, in order. */
  private readonly replaying = new Map<string, HeldFrame[]>();
  /** Per room, the seq a finished replay reached: live copies up to it are skipped. */
  private readonly after = new Map<string, number>();
  /** Bytes of the frames held in `replaying`. */
  private heldBytes = 0;

  /** Starts holding the room's live frames (a replay of it begins). */
  begin(room: string): void {
    this.replaying.set(room, []);
  }

  /** Whether the room is being replayed. */
  isReplaying(room: string): boolean {
    return this.replaying.has(room);
  }

  /** The fate of a live frame of `room` with `seq`; `unsent`: bytes the socket has not sent yet. */
  offer(room: string, seq: number, data: Buffer, unsent: number, maxBytes: number): Offer {
    const held = this.replaying.get(room);
    if (held !== undefined) {
      if (this.heldBytes + data.length + unsent > maxBytes) return 'overflow';
      held.push({ seq, data });
      this.heldBytes += data.length;
      return 'held';
    }
    const floor = this.after.get(room);
    if (floor !== undefined) {
      if (seq <= floor) return 'skip';
      this.after.delete(room);
    }
    return 'send';
  }

  /**
   * The frames held for `room` so far, in order. The array may grow while the caller awaits
   * its socket: iterate it by index. Each frame read is released with `release`.
   */
  held(room: string): readonly HeldFrame[] {
    return this.replaying.get(room) ?? [];
  }

  /** A held frame was written (or skipped): its bytes no longer count. */
  release(frame: HeldFrame): void {
    this.heldBytes = Math.max(0, this.heldBytes - frame.data.length);
  }

  /** The replay of `room` reached `seq` and everything held is sent: live frames flow again. */
  finish(room: string, seq: number): void {
    this.replaying.delete(room);
    this.after.set(room, seq);
  }

  /** The connection no longer follows `room` (its replay failed, or it left). */
  forget(room: string): void {
    const held = this.replaying.get(room);
    if (held !== undefined) for (const h of held) this.release(h);
    this.replaying.delete(room);
    this.after.delete(room);
  }

  /** Frees every held frame (the connection is closing). */
  drop(): void {
    for (const h of this.replaying.values()) h.length = 0;
    this.heldBytes = 0;
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.heldBytes;
  }
}
