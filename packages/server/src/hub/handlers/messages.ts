/**
 * send_message: stored through the writer (seq order, dedupe by ref), acked once stored and
 * delivered here: the sender's own `new_message` always precedes its `ack` (when the room's feed
 * has a gap below it, the ack waits for the fill, at most ACK_WAIT_MS).
 */
import type { ClientEvents, Ref } from '@parley/protocol';
import type { Connection } from '../../connection.js';
import { MUTED_FOR_GOOD } from '../../store/membership.js';
import { atMost } from '../../wait.js';
import { ClientError } from '../errors.js';
import { type Handlers, type HubContext, roomName } from './context.js';

/** Longest an ack waits for its message to be delivered here (a store that fails the gap fill). */
export const ACK_WAIT_MS = 5000;

export function messageHandlers(ctx: HubContext): Pick<Handlers, 'send_message'> {
  const { config, store, writer, userLimit, rooms } = ctx;

  const sendMessage = async (conn: Connection, p: ClientEvents['send_message'], ref: Ref | undefined): Promise<void> => {
    // A change_room sent just before this event decides the current room: wait for it.
    if (p.room === undefined && ctx.members.entering(conn)) await ctx.members.settled(conn);
    const room = p.room === undefined ? conn.current : roomName(p.room);
    if (room === undefined) throw new ClientError('not_in_room', 'No current room: join one or name it.');
    if (!conn.rooms.has(room)) await ctx.members.followed(conn, room); // after the joins sent before it
    const muted = ctx.members.mutedUntil(conn, room);
    if (muted !== undefined) {
      throw new ClientError('muted', muted === MUTED_FOR_GOOD ? 'You are muted in this room until a moderator unmutes you.' : `You are muted in this room until ${new Date(muted).toISOString()}.`, room);
    }
    if (p.message.length > config.maxMessageChars) {
      throw new ClientError('message_too_long', `The message is longer than ${config.maxMessageChars} characters.`);
    }
    const key = ref === undefined ? undefined : JSON.stringify(ref); // JSON keeps "1" and 1 apart
    const perUser = config.userRateLimitPerSec;
    if (perUser > 0 && !(await userLimit.hit(conn.user, perUser))) {
      // A retry of a message that was stored already is acked, not refused.
      const seen = key === undefined ? undefined : await store.findRef(conn.user, key);
      if (seen === undefined || ref === undefined) {
        ctx.metrics.rateLimited.inc({ limit: 'user' });
        throw new ClientError('rate_limited', `More than ${perUser} messages per second from user ${conn.user} across connections.`);
      }
      conn.send('ack', { ref, room: seen.room, seq: seen.seq }, ref);
      return;
    }
    const stored = await writer.submit({ room, from: conn.user, message: p.message, sent: new Date().toISOString(), ref: key });
    if (ref === undefined) return;
    const delivered = stored.duplicate ? undefined : rooms.reached(stored.message.room, stored.message.seq);
    if (delivered !== undefined) await atMost(delivered, ACK_WAIT_MS);
    conn.send('ack', { ref, room: stored.message.room, seq: stored.message.seq }, ref);
  };

  return { send_message: sendMessage };
}
