/**
 * resume: follow the rooms again and replay what was missed.
 *
 * Every room is joined and put in replaying mode at once, synchronously, so live messages from
 * then on are held for the connection (hub/replay.ts); the store is read from the client's seq
 * on, paced by the socket; then the held messages newer than the replay are sent, and `resumed`
 * closes the room. Nothing is lost and nothing is doubled. What the store no longer has (pruned by
 * retention), or what lies beyond the newest `resumeMaxMessages` of a gap, is not replayed: the
 * replay goes around it, in order, and `resumed.missing` names the exact range.
 */
import { type ClientEvents, DIRECT_ROOM_PREFIX, type Ref, type SeqRange } from '@parley/protocol';
import type { Connection } from '../../connection.js';
import { encodeItem, frameText } from '../../frames.js';
import { NO_SUCH_ROOM } from '../../store/membership.js';
import { ClientError, fail } from '../errors.js';
import { ReplayBuffer } from '../replay.js';
import { type Handlers, type HubContext, roomName } from './context.js';

/**
 * Messages read from the store per query during a resume: a connection holds at most one page
 * while it waits for its socket (50 of the longest messages are about 400 KB of text).
 */
export const REPLAY_PAGE = 50;
/** Resumes of one connection that may wait behind the one running (the running one included). */
export const MAX_QUEUED_RESUMES = 4;

export function resumeHandlers(ctx: HubContext): Pick<Handlers, 'resume'> {
  const { config, store, rooms, members, metrics } = ctx;
  /** Each resuming connection's replay buffer (the resume unit's state, not the connection's). */
  const buffers = new WeakMap<Connection, ReplayBuffer>();

  /**
   * Writes one replayed frame, paced by the socket: at most half the send queue is written ahead
   * of the client (this turn's corked frames included), the rest waits in the store. Live frames
   * held meanwhile count against the other half (ReplayBuffer.offer). A client that takes in
   * nothing for pongTimeoutMs is a slow consumer, closed with 4000 like any other.
   */
  const paced = async (conn: Connection, data: Buffer): Promise<boolean> => {
    const half = config.sendQueueMaxBytes / 2;
    if (conn.unsentBytes > half && !(await conn.drained(half, config.pongTimeoutMs))) {
      conn.slowConsumer();
      return false;
    }
    return conn.sendFrame(data);
  };

  /**
   * Replays `room` after `after` (see the module doc). The target is the seq the room's feed has
   * delivered here (it started, at the latest, when the room was joined above): everything up to
   * it is read from the store, everything after it is among the held live frames.
   */
  const replay = async (conn: Connection, buffer: ReplayBuffer, room: string, after: number, ref: Ref | undefined): Promise<void> => {
    const held = buffer.held(room);
    const latest = await rooms.seqOf(room);
    let missing: SeqRange | undefined;
    const lost = (from: number, to: number): void => {
      missing = missing === undefined ? { from, to } : { from: missing.from, to };
    };
    let last = after;
    const ahead = after > latest; // the server's data was reset, or rooms merged: start over from its latest
    if (ahead) last = latest;
    else if (latest - after > config.resumeMaxMessages) {
      // Too big a gap: the newest resumeMaxMessages are replayed, the older part is reported.
      last = latest - config.resumeMaxMessages;
      lost(after + 1, last);
    }
    while (last < latest) {
      const page = await store.messagesAfter(room, last, REPLAY_PAGE);
      if (page.length === 0) break;
      for (const m of page) {
        if (!conn.rooms.has(room)) return; // removed from the room meanwhile (hub/members.ts)
        if (m.seq > last + 1) lost(last + 1, m.seq - 1); // pruned by retention
        if (!(await paced(conn, frameText(encodeItem(m))))) return;
        metrics.deliveries.inc();
        last = m.seq;
      }
      if (page.length < REPLAY_PAGE) break;
    }
    if (last < latest) {
      lost(last + 1, latest); // the rest is gone from the store too
      last = latest;
    }
    // Live messages held meanwhile (the array may grow while we wait for the socket).
    for (let i = 0; i < held.length; i++) {
      const h = held[i];
      if (h === undefined) break;
      buffer.release(h);
      if (h.seq <= last) continue;
      if (!conn.rooms.has(room)) return;
      if (!(await paced(conn, h.data))) return;
      last = h.seq;
    }
    // No await between the loop's last check and here: nothing can slip in between.
    buffer.finish(room, last);
    const recovered = !ahead && missing === undefined;
    conn.send('resumed', missing === undefined ? { room, seq: last, recovered } : { room, seq: last, recovered, missing }, ref);
  };

  /**
   * The named rooms the connection may follow, with the user's mute in each: those it follows, its
   * user's memberships, and public rooms (joined now, as `join` does, made if no room has the
   * name). Each other
   * one is answered on its own, `error` `forbidden` (`banned`) naming the room, as for a room
   * that does not exist.
   */
  const admitted = async (conn: Connection, named: [string, number][], ref: Ref | undefined): Promise<[string, number, number | null][]> => {
    const fresh = named.filter(([room]) => !conn.rooms.has(room)).map(([room]) => room);
    const access = await store.roomsAccess(conn.user, fresh);
    const out: [string, number, number | null][] = [];
    for (const [room, after] of named) {
      const a = access.get(room);
      if (conn.rooms.has(room) || a?.member !== undefined) {
        out.push([room, after, a?.member?.mutedUntil ?? null]);
        continue;
      }
      if (a !== undefined && a.visibility !== 'public') {
        fail(conn, 'forbidden', ref, NO_SUCH_ROOM, room);
        continue;
      }
      const joined = await members.apply({ type: 'join', room, user: conn.user, create: config.roomCreation === 'open' && !room.startsWith(DIRECT_ROOM_PREFIX) });
      if (joined.ok) out.push([room, after, joined.member?.mutedUntil ?? null]);
      else fail(conn, joined.code, ref, joined.message, room);
    }
    return out;
  };

  const resumeNow = async (conn: Connection, p: ClientEvents['resume'], ref: Ref | undefined): Promise<void> => {
    // Names that differ only by case or Unicode form are one room: resumed from the lower seq.
    const wanted = new Map<string, number>();
    for (const [raw, after] of Object.entries(p.rooms)) {
      const room = roomName(raw);
      wanted.set(room, Math.min(after, wanted.get(room) ?? after));
    }
    const named = [...wanted];
    const added = named.filter(([room]) => !conn.rooms.has(room)).length;
    if (conn.rooms.size + added > config.maxRoomsPerConnection) throw new ClientError('too_many_rooms');
    const entries = await members.entry(conn, admitted(conn, named, ref));
    if (!conn.open) return;
    let buffer = buffers.get(conn);
    if (buffer === undefined) {
      buffer = new ReplayBuffer();
      buffers.set(conn, buffer);
      conn.replay = buffer; // what the room's delivery loop offers live frames to
    }
    for (const [room, , mutedUntil] of entries) {
      if (!conn.rooms.has(room)) members.follow(conn, room, mutedUntil);
      buffer.begin(room);
    }
    for (const [i, [room, after]] of entries.entries()) {
      try {
        await replay(conn, buffer, room, after, ref);
      } catch (err) {
        // Do not leave a room followed with a hole in it: drop the rooms not yet replayed.
        for (const [r] of entries.slice(i)) rooms.leave(conn, r);
        throw err;
      }
      if (!conn.open) return;
    }
  };

  /**
   * One resume at a time per connection: a second one (an SDK filling a hole) waits for the first;
   * at most MAX_QUEUED_RESUMES wait, more are refused with rate_limited.
   */
  const chains = new WeakMap<Connection, { tail: Promise<void>; length: number }>();
  const resume = async (conn: Connection, p: ClientEvents['resume'], ref: Ref | undefined): Promise<void> => {
    let chain = chains.get(conn);
    if (chain !== undefined && chain.length >= MAX_QUEUED_RESUMES) throw new ClientError('rate_limited', `At most ${MAX_QUEUED_RESUMES} resumes of one connection wait for the one running.`);
    // The first one starts now, synchronously: its rooms are followed before any live message.
    const run = chain === undefined ? resumeNow(conn, p, ref) : chain.tail.then(() => (conn.open ? resumeNow(conn, p, ref) : undefined));
    if (chain === undefined) chains.set(conn, (chain = { tail: run, length: 0 }));
    chain.length++;
    chain.tail = run.then(
      () => undefined,
      () => undefined,
    );
    try {
      await run;
    } finally {
      if (--chain.length === 0) chains.delete(conn);
    }
  };

  return { resume };
}
