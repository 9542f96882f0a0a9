/**
 * Rooms on this node: who follows which room, each room's feed, and the delivery loop.
 *
 * Guarantees:
 * - A connection is a member of a room here exactly while the room is in its `rooms` set; a room
 *   exists here exactly while it has members (the last one to leave closes it: its feed stops
 *   and its topic is unsubscribed).
 * - A stored message or room event goes to the room's members through the room's feed
 *   (hub/feed.ts): in seq order, once; a room event passes the RoomEventHook first. It is serialized and framed once; the same bytes go to every member, except
 *   that a member replaying the room gets it through its replay buffer (hub/replay.ts).
 * - `seqOf` is the seq a member has seen everything up to once it joined (the feed's last
 *   delivered seq), so a `joined` never promises a message the member will not get.
 * - With other nodes (a broker with fan-out), every `catchUpIntervalMs` one store query reads the
 *   latest seq of every room open here, and each feed behind it reads what it missed: delivery
 *   does not depend on the broker (hub/feed.ts). A room's topic stays subscribed through broker
 *   outages (broker/broker.ts).
 */
import type { Logger } from 'pino';
import { isRoomEvent, type RoomEvent, type TimelineItem } from '@parley/protocol';
import { messageOf } from '../failure.js';
import type { Connection } from '../connection.js';
import { encodeItem, frameText } from '../frames.js';
import type { Metrics } from '../metrics.js';
import type { Store } from '../store/store.js';
import type { ClusterLink } from './cluster.js';
import { Feed } from './feed.js';

/** Rooms per query of the periodic catch-up. */
const CATCH_UP_CHUNK = 5000;

/** A room with members on this node. */
interface Room {
  readonly name: string;
  readonly members: Set<Connection>;
  readonly feed: Feed;
  /** Settles once the room's topic is subscribed and its latest seq read. */
  readonly ready: Promise<void>;
}

/** Told of every change of who follows a room here (presence announces them). */
export interface MembershipListener {
  joined(conn: Connection, room: string): void;
  left(conn: Connection, room: string): void;
}

/**
 * Told of every room event before it goes to the room's members here, in the room's seq order
 * (hub/members.ts): a removal stops the removed user's connections following the room before
 * anything after it is delivered, on every node.
 */
export type RoomEventHook = (event: RoomEvent, members: ReadonlySet<Connection>) => void;

export class Rooms {
  private readonly rooms = new Map<string, Room>();
  private listener: MembershipListener | undefined;
  private eventHook: RoomEventHook | undefined;
  private catchUpTimer: NodeJS.Timeout | undefined;
  private catchingUp = false;

  constructor(
    private readonly store: Store,
    private readonly link: ClusterLink,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {}

  /** Sets the one listener of membership changes. */
  listen(listener: MembershipListener): void {
    this.listener = listener;
  }

  /** Sets the one hook of room events (see RoomEventHook). */
  onRoomEvent(hook: RoomEventHook): void {
    this.eventHook = hook;
  }

  /** Whether the room has members on this node. */
  isOpen(name: string): boolean {
    return this.rooms.has(name);
  }

  /** Adds `conn` to the room (opening it on this node if it is the first member). */
  join(conn: Connection, name: string): void {
    let room = this.rooms.get(name);
    if (room === undefined) room = this.open(name);
    if (conn.rooms.has(name)) return;
    conn.rooms.add(room.name); // the open room's own string: one copy per room, not per follower
    room.members.add(conn);
    this.listener?.joined(conn, name);
  }

  /** Removes `conn` from the room; the room closes here with its last member. */
  leave(conn: Connection, name: string): void {
    if (!conn.rooms.delete(name)) return;
    conn.replay?.forget(name);
    if (conn.current === name) conn.current = undefined;
    const room = this.rooms.get(name);
    if (room !== undefined) {
      room.members.delete(conn);
      if (room.members.size === 0) this.close(room);
    }
    this.listener?.left(conn, name);
  }

  /** Removes `conn` from every room (it closed). */
  leaveAll(conn: Connection): void {
    for (const room of conn.rooms) this.leave(conn, room);
  }

  /** Members of the room on this node. */
  size(name: string): number {
    return this.rooms.get(name)?.members.size ?? 0;
  }

  /** Rooms with members on this node. */
  get count(): number {
    return this.rooms.size;
  }

  /** First member on this node: subscribe to the room's topic, then start its feed. */
  private open(name: string): Room {
    const members = new Set<Connection>();
    const gapFills = this.metrics.gapFills;
    const feed = new Feed(name, this.store, { deliver: (m) => this.deliver(members, m), filled: (reason) => gapFills.inc({ reason }) }, this.log);
    const ready = (async () => {
      try {
        await this.link.joinRoom(name);
      } catch (err) {
        // The broker subscribes it once it is back; the catch-up delivers meanwhile.
        this.log.debug({ err: messageOf(err), room: name }, 'room topic not subscribed yet');
      }
      await feed.start();
    })();
    const room: Room = { name, members, feed, ready };
    this.rooms.set(name, room);
    return room;
  }

  private close(room: Room): void {
    this.rooms.delete(room.name);
    room.feed.close();
    this.link.leaveRoom(room.name);
  }

  /** The seq a member of `name` has seen everything up to, once the room is ready. */
  async seqOf(name: string): Promise<number> {
    const room = this.rooms.get(name);
    if (room !== undefined) {
      await room.ready;
      const seq = room.feed.delivered;
      if (seq !== undefined) return seq;
    }
    return this.store.lastSeq(name);
  }

  /** A stored message or room event, for the room's feed; `local`: stored by this node. */
  accept(m: TimelineItem, local = false): void {
    this.rooms.get(m.room)?.feed.accept(m, local);
  }

  /**
   * Resolves once the message `seq` of `room` went to the room's members here (undefined when it
   * has, or the room is not open here): an ack waits for it, so the sender's own `new_message`
   * always comes first.
   */
  reached(room: string, seq: number): Promise<void> | undefined {
    return this.rooms.get(room)?.feed.reached(seq);
  }

  /** After a broker outage: every room reads from the store what other nodes published meanwhile. */
  resync(): void {
    for (const room of this.rooms.values()) room.feed.resync();
  }

  /** Starts the periodic catch-up (see the module doc); only with other nodes to miss. */
  startCatchUp(intervalMs: number): void {
    if (!this.link.fanout || this.catchUpTimer !== undefined) return;
    this.catchUpTimer = setInterval(() => void this.catchUp(), intervalMs);
    this.catchUpTimer.unref();
  }

  stopCatchUp(): void {
    if (this.catchUpTimer !== undefined) clearInterval(this.catchUpTimer);
    this.catchUpTimer = undefined;
  }

  /** One pass: the latest seq of every room open here, in one query per CATCH_UP_CHUNK rooms. */
  async catchUp(): Promise<void> {
    if (this.catchingUp || this.rooms.size === 0) return;
    this.catchingUp = true;
    try {
      const names = [...this.rooms.keys()];
      for (let i = 0; i < names.length; i += CATCH_UP_CHUNK) {
        const latest = await this.store.lastSeqs(names.slice(i, i + CATCH_UP_CHUNK));
        for (const [name, seq] of latest) this.rooms.get(name)?.feed.catchUp(seq);
      }
    } catch (err) {
      this.log.debug({ err: messageOf(err) }, 'catch-up read failed; next interval');
    } finally {
      this.catchingUp = false;
    }
  }

  /** Sends one frame, serialized once, to every local connection in the room (but `except`). */
  broadcast(room: string, frame: string, except?: Connection | ((c: Connection) => boolean)): void {
    const members = this.rooms.get(room)?.members;
    if (members === undefined) return;
    const data = frameText(frame);
    for (const conn of members) {
      if (conn === except || (typeof except === 'function' && except(conn))) continue;
      conn.sendFrame(data);
    }
  }

  /** An ephemeral room event (presence, typing): to local members now, and to the other nodes. */
  announce(room: string, frame: string, except?: Connection, exceptUser?: string): void {
    this.broadcast(room, frame, exceptUser !== undefined ? (c) => c.user === exceptUser : except);
    this.link.frame(room, frame, exceptUser);
  }

  /**
   * Passes a stored message to the room's members: one serialization, the same bytes to all.
   * A member replaying the room gets it through its replay buffer (queued behind the replay, or
   * skipped when the replay already sent it).
   */
  private deliver(members: Set<Connection>, m: TimelineItem): void {
    if (members.size === 0) return;
    if (isRoomEvent(m)) {
      this.eventHook?.(m, members);
      if (members.size === 0) return;
    }
    const data = frameText(encodeItem(m));
    this.metrics.deliveries.inc(members.size);
    for (const conn of members) {
      const replay = conn.replay;
      if (replay !== undefined) {
        if (!conn.open) continue;
        const fate = replay.offer(m.room, m.seq, data, conn.unsentBytes, conn.sendQueueMaxBytes);
        if (fate === 'skip' || fate === 'held') continue;
        if (fate === 'overflow') {
          conn.slowConsumer();
          continue;
        }
      }
      conn.sendFrame(data);
    }
  }
}
