/**
 * The rooms a client follows and its position in each: the highest seq delivered to the app.
 *
 * Per room, seqs have no gaps (1, 2, 3…), so the position only ever advances by one: a message
 * reaches the app only when its seq is the position + 1. What comes early is held:
 *
 * - while a room replays after a `resume` (the connection's own, or a fill), until its `resumed`;
 * - a live message above position + 1 is a hole: the room is asked to replay from the position
 *   (`fill`, one at a time per room) and the message is held (the replay brings it again).
 *
 * At `resumed {seq}` every seq up to `seq` was sent. What is still not held between the position
 * and `seq` (not replayed: pruned, beyond the server's `resumeMaxMessages`, or a server that
 * replays nothing) is read from history (Backfill: newest first, bounded); what history no longer
 * has either is reported as a `gap` with its exact range, in its place in the stream. Nothing
 * reaches the app twice, and everything in order.
 *
 * Every seq-bearing frame of a room counts: chat messages (`new_message`) and room events
 * (`member_joined`, `banned`, …, each a TimelineItem with its `type`) share the room's seqs, so
 * both go through the same gate. `removed` ends a room: what is held up to its seq is delivered,
 * nothing after it.
 */
import { roomKey, type ServerEvents, type TimelineItem, TYPING_INTERVAL_MS } from '@parley/protocol';
import type { GapEvent } from './types.js';

export interface RoomsPort {
  /** A message or room event for the app (its seq is the room's position now). */
  deliver(m: TimelineItem): void;
  /** Seqs the app will never get (the position is now `seq`). */
  gap(g: GapEvent): void;
  /** A hole in live delivery: ask the server to replay `room` from `after` (its `resumed` follows). */
  fill(room: string, after: number): void;
}

/** What a room's `resumed` leaves to do: nothing, or read history below `top` + 1 down to `after` + 1. */
export interface Backfill {
  room: string;
  /** The position: history is read down to (not including) it. */
  after: number;
  /** The highest seq not held: the first page is read `before` top + 1. */
  top: number;
  /** The `resumed` seq: every seq up to it is accounted for once history is read. */
  upTo: number;
  /** The replay this backfill belongs to: stale once the room's flow changes (a drop, a leave). */
  flow: Flow;
}

/** A room between a `resume` and the end of its replay: what arrived early, by seq. */
interface Flow {
  /** `replaying`: until `resumed`; `backfilling`: reading history after it. */
  phase: 'replaying' | 'backfilling';
  readonly held: Map<number, TimelineItem>;
}

export class Rooms {
  /** Followed rooms (joined, or to be joined/resumed on the next connection). */
  readonly followed: Set<string>;
  private readonly seqs = new Map<string, number>();
  private readonly flows = new Map<string, Flow>();
  private readonly typingAt = new Map<string, number>();

  constructor(
    rooms: readonly string[],
    private readonly port: RoomsPort,
  ) {
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

  /**
   * Follows `room` from `seq` on (a membership the server listed, a room just made or opened):
   * the position starts there unless it has one already.
   */
  start(room: string, seq: number): void {
    this.followed.add(room);
    if (!this.seqs.has(room)) this.seqs.set(room, seq);
  }

  /**
   * The user was removed from `room` (kicked or banned) at `seq`: what is held up to `seq` and
   * contiguous with the position is delivered, then the room is no longer followed (nothing after
   * `seq` can come). Returns whether it was followed.
   */
  removed(room: string, seq: number): boolean {
    if (!this.followed.has(room)) return false;
    const flow = this.flows.get(room);
    if (flow !== undefined) {
      for (;;) {
        const next = flow.held.get(this.lastSeq(room) + 1);
        if (next === undefined || next.seq > seq || this.flows.get(room) !== flow) break;
        flow.held.delete(next.seq);
        this.advance(next);
      }
    }
    this.unfollow(room);
    return true;
  }

  /** Stops following a room and forgets its position. */
  unfollow(room: string): void {
    this.followed.delete(room);
    this.seqs.delete(room);
    this.flows.delete(room);
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

  /** The connection is gone: replays in progress end (the next connection resumes from the positions). */
  disconnected(): void {
    this.flows.clear();
  }

  /** The room's replay begins (the connection's `resume` lists it): early messages are held until its `resumed`. */
  replaying(room: string): void {
    this.flows.set(room, { phase: 'replaying', held: new Map() });
  }

  /** A `new_message`: delivered if it is next, held if it is early (a hole starts a fill), dropped if already delivered. */
  receive(m: TimelineItem): void {
    const room = m.room;
    if (!this.followed.has(room)) return;
    const pos = this.seqs.get(room);
    if (pos === undefined) {
      // No position yet (the join is not answered): the position starts here.
      this.advance(m);
      return;
    }
    if (m.seq <= pos) return; // already delivered
    const flow = this.flows.get(room);
    if (m.seq === pos + 1 && flow?.phase !== 'backfilling') {
      this.advance(m);
      if (flow !== undefined) this.drain(room, flow);
      return;
    }
    if (flow !== undefined) {
      flow.held.set(m.seq, m);
      return;
    }
    // A hole in live delivery: hold this one and have the room replayed from the position.
    const fill: Flow = { phase: 'replaying', held: new Map([[m.seq, m]]) };
    this.flows.set(room, fill);
    this.port.fill(room, pos);
  }

  /**
   * The end of a room's replay: every seq up to `r.seq` was sent. Returns the history to read
   * when some of them are neither delivered nor held; otherwise the room is settled now.
   */
  resumed(r: ServerEvents['resumed']): Backfill | undefined {
    const room = r.room;
    const flow = this.flows.get(room) ?? { phase: 'replaying', held: new Map<number, TimelineItem>() };
    const pos = this.seqs.get(room);
    // Not followed (left meanwhile), never positioned, or a second `resumed` while reading history: nothing to settle.
    if (!this.followed.has(room) || pos === undefined || flow.phase === 'backfilling') return undefined;
    this.flows.set(room, flow);
    this.drain(room, flow);
    const at = this.lastSeq(room);
    const upTo = r.seq;
    if (upTo < at) {
      // The server's room is behind what was delivered (its database was reset): what the app
      // has above `upTo` is gone from the server, and the position moves back.
      this.seqs.set(room, upTo);
      this.port.gap({ room, from: upTo + 1, to: at, seq: upTo });
      this.settle(room, flow, upTo);
      return undefined;
    }
    let top = upTo;
    while (top > at && flow.held.has(top)) top--;
    if (top === at) {
      this.settle(room, flow, upTo);
      return undefined;
    }
    flow.phase = 'backfilling';
    return { room, after: at, top, upTo, flow };
  }

  /** Whether a backfill is still the one its room waits for (no drop or leave since it began). */
  current(b: Backfill): boolean {
    return this.flows.get(b.room) === b.flow;
  }

  /**
   * History was read for `b`: every seq up to `b.upTo` is now delivered from what is held, in
   * order, and each range neither held nor in history is reported as a gap where it falls.
   */
  backfilled(b: Backfill, messages: readonly TimelineItem[]): void {
    if (!this.current(b)) return;
    for (const m of messages) if (m.room === b.room && m.seq > b.after && m.seq <= b.upTo && !b.flow.held.has(m.seq)) b.flow.held.set(m.seq, m);
    this.settle(b.room, b.flow, b.upTo);
  }

  /**
   * Ends a room's replay at `upTo`: what is held up to it goes to the app in order, with a gap
   * before each jump; then the held messages above it are received again like live ones (a
   * hole among them starts a fill).
   */
  private settle(room: string, flow: Flow, upTo: number): void {
    const seqs = [...flow.held.keys()].sort((a, b) => a - b);
    const later: TimelineItem[] = [];
    for (const seq of seqs) {
      const m = flow.held.get(seq);
      if (m === undefined) continue;
      if (seq > upTo) {
        later.push(m);
        continue;
      }
      const pos = this.lastSeq(room);
      if (seq <= pos) continue;
      if (seq > pos + 1) {
        this.seqs.set(room, seq - 1);
        this.port.gap({ room, from: pos + 1, to: seq - 1, seq: seq - 1 });
        if (this.flows.get(room) !== flow) return; // a listener left the room or closed the client
      }
      this.advance(m);
      if (this.flows.get(room) !== flow) return;
    }
    const pos = this.lastSeq(room);
    if (pos < upTo) {
      this.seqs.set(room, upTo);
      this.port.gap({ room, from: pos + 1, to: upTo, seq: upTo });
      if (this.flows.get(room) !== flow) return;
    }
    this.flows.delete(room);
    for (const m of later) this.receive(m);
  }

  /** Delivers what is held from the position + 1 on, while it is contiguous. */
  private drain(room: string, flow: Flow): void {
    for (;;) {
      const next = flow.held.get(this.lastSeq(room) + 1);
      if (next === undefined || this.flows.get(room) !== flow) return;
      flow.held.delete(next.seq);
      this.advance(next);
    }
  }

  private advance(m: TimelineItem): void {
    this.seqs.set(m.room, m.seq);
    this.port.deliver(m);
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
