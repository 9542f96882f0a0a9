/**
 * join, leave, change_room: what a connection follows, answered with the room's seq. Following is
 * membership's doing (hub/members.ts): a join makes the user a member of a public room (or
 * creates one) before the connection follows it; a leave ends the membership.
 */
import type { ClientEvents, Ref } from '@parley/protocol';
import type { Connection } from '../../connection.js';
import { answerFailure, ClientError } from '../errors.js';
import { type Handlers, type HubContext, roomName } from './context.js';

/**
 * Answers a join with the room's seq. If the seq cannot be read (store down) the join is undone
 * and answered with an error, so the client never follows a room it was told it could not join.
 */
export async function replyWithSeq(ctx: HubContext, conn: Connection, room: string, ref: Ref | undefined, reply: (seq: number) => void): Promise<void> {
  let seq: number;
  try {
    seq = await ctx.rooms.seqOf(room);
  } catch (err) {
    ctx.rooms.leave(conn, room);
    answerFailure(ctx.log, conn, 'join', ref, err);
    return;
  }
  if (conn.rooms.has(room)) reply(seq);
}

export function roomHandlers(ctx: HubContext): Pick<Handlers, 'join' | 'leave' | 'change_room'> {
  const { config, rooms, members } = ctx;
  const create = config.roomCreation === 'open';

  const changeRoom = async (conn: Connection, p: ClientEvents['change_room'], ref: Ref | undefined): Promise<void> => {
    const name = roomName(p.name);
    if (name !== conn.current) {
      if (!conn.rooms.has(name)) {
        const spare = conn.current !== undefined ? 1 : 0;
        if (conn.rooms.size >= config.maxRoomsPerConnection + spare) throw new ClientError('too_many_rooms');
        await members.enter(conn, name, create, { spare, tell: false });
      }
      if (conn.current !== undefined && conn.current !== name) rooms.leave(conn, conn.current);
      conn.current = name;
    }
    return replyWithSeq(ctx, conn, name, ref, (seq) => conn.send('room_changed', { name, seq }, ref));
  };

  const join = async (conn: Connection, p: ClientEvents['join'], ref: Ref | undefined): Promise<void> => {
    const room = roomName(p.room);
    if (!conn.rooms.has(room)) {
      if (conn.rooms.size >= config.maxRoomsPerConnection) throw new ClientError('too_many_rooms');
      await members.enter(conn, room, create);
    }
    return replyWithSeq(ctx, conn, room, ref, (seq) => conn.send('joined', { room, seq }, ref));
  };

  const leave = async (conn: Connection, p: ClientEvents['leave'], ref: Ref | undefined): Promise<void> => {
    const room = roomName(p.room);
    await members.settled(conn); // a join sent just before goes first
    await members.leave(conn, room);
    conn.send('left', { room }, ref);
  };

  return { change_room: changeRoom, join, leave };
}
