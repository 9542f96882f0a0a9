/**
 * resume: follow the rooms again and replay what was missed.
 *
 * Every room is joined and put in replaying mode at once, synchronously, so live messages from
 * then on are held for the connection (hub/replay.ts); the store is read from the client's seq
 * on, paced by the socket; then the held messages newer than the replay are sent, and `resumed`
 * closes the room. Nothing is lost and nothing is doubled.
 */
import type { ClientEvents, Ref } from '@parley/protocol';
import type { Connection } from '../../connection.js';
import { encode, frameText } from '../../frames.js';
import { ClientError } from '../errors.js';
import { ReplayBuffer } from '../replay.js';
import { type Handlers, type HubContext, roomName } from './context.js';

/**
 * Messages read from the store per query during a resume: a connection holds at most one page
 * while it waits for its socket (50 of the longest messages are about 400 KB of text).
 */
export const REPLAY_PAGE = 50;

export function resumeHandlers(ctx: HubContext): Pick<Handlers, 'resume'> {
  const { config, store, rooms } = ctx;
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

  const replay = async (conn: Connection, buffer: ReplayBuffer, room: string, after: number, ref: Ref | undefined): Promise<void> => {
    const held = buffer.held(room);
    const latest = await store.lastSeq(room);
    let last = after;
    let recovered = after <= latest && latest - after <= config.resumeMaxMessages;
    while (recovered && last < latest) {
      const page = await store.messagesAfter(room, last, REPLAY_PAGE);
      const first = page[0];
      if (first === undefined || first.seq !== last + 1) {
        recovered = false; // pruned by retention: a gap only history can explain
        break;
      }
      for (const m of page) {
        if (!(await paced(conn, frameText(encode('new_message', m))))) return;
        last = m.seq;
      }
    }
    // Not recovered: the client reloads history; live messages go on from the latest seq.
    if (!recovered) last = latest;
    // Live messages held meanwhile (the array may grow while we wait for the socket).
    for (let i = 0; i < held.length; i++) {
      const h = held[i];
      if (h === undefined) break;
      buffer.release(h);
      if (h.seq <= last) continue;
      if (!(await paced(conn, h.data))) return;
      last = h.seq;
    }
    // No await between the loop's last check and here: nothing can slip in between.
    buffer.finish(room, last);
    conn.send('resumed', { room, seq: last, recovered }, ref);
  };

  const resume = async (conn: Connection, p: ClientEvents['resume'], ref: Ref | undefined): Promise<void> => {
    // Names that differ only by case or Unicode form are one room: resumed from the lower seq.
    const wanted = new Map<string, number>();
    for (const [raw, after] of Object.entries(p.rooms)) {
      const room = roomName(raw);
      wanted.set(room, Math.min(after, wanted.get(room) ?? after));
    }
    const entries = [...wanted];
    const added = entries.filter(([room]) => !conn.rooms.has(room)).length;
    if (conn.rooms.size + added > config.maxRoomsPerConnection) throw new ClientError('too_many_rooms');
    let buffer = buffers.get(conn);
    if (buffer === undefined) {
      buffer = new ReplayBuffer();
      buffers.set(conn, buffer);
      conn.replay = buffer; // what the room's delivery loop offers live frames to
    }
    for (const [room] of entries) {
      rooms.join(conn, room);
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

  return { resume };
}
