/**
 * create_room, open_direct, and the moderation events (invite, kick, ban, unban, mute, unmute,
 * set_role): each one change of membership through hub/members.ts, checked and stored with its
 * room event by the store. A moderation event carrying a `ref` is answered `ack {room, seq}` once
 * its event went to the room's members here (as a send's ack follows its message).
 */
import { type ClientEvents, DIRECT_ROOM_PREFIX, type Ref } from '@parley/protocol';
import type { Connection } from '../../connection.js';
import { encodeItem } from '../../frames.js';
import { type MembershipOp, type MembershipOutcome, MUTED_FOR_GOOD } from '../../store/membership.js';
import { atMost } from '../../wait.js';
import { ClientError } from '../errors.js';
import { directRoomName } from '../members.js';
import { type Handlers, type HubContext, roomName } from './context.js';
import { replyWithSeq } from './rooms.js';
import { ACK_WAIT_MS } from './messages.js';

type ChangeDone = Extract<MembershipOutcome, { ok: true }>;
type Moderation = 'invite' | 'kick' | 'ban' | 'unban' | 'mute' | 'unmute' | 'set_role';

export function memberHandlers(ctx: HubContext): Pick<Handlers, 'create_room' | 'open_direct' | Moderation> {
  const { config, store, rooms, members } = ctx;

  /** The registered name of `raw`, or unknown_user. */
  const known = async (raw: string): Promise<string> => {
    const user = await store.getUser(raw);
    if (user === undefined) throw new ClientError('unknown_user', `No user "${raw.slice(0, 64)}".`);
    return user.name;
  };

  const createRoom = async (conn: Connection, p: ClientEvents['create_room'], ref: Ref | undefined): Promise<void> => {
    const room = roomName(p.room);
    if (room.startsWith(DIRECT_ROOM_PREFIX)) throw new ClientError('forbidden', `Room names starting with "${DIRECT_ROOM_PREFIX}" are kept for direct rooms.`, room);
    if (config.roomCreation === 'closed') throw new ClientError('forbidden', 'Users cannot make rooms on this server (roomCreation: closed).', room);
    if (!conn.rooms.has(room) && conn.rooms.size >= config.maxRoomsPerConnection) throw new ClientError('too_many_rooms');
    const out = await members.must({ type: 'create', room, user: conn.user, visibility: p.visibility, title: p.title ?? '' });
    const created = out.events[0];
    if (conn.open) members.follow(conn, room, null);
    if (created !== undefined) conn.sendRaw(encodeItem(created, ref));
    members.invited(conn.user, { ...members.membershipOf(out, 'owner'), by: conn.user }, conn);
  };

  const openDirect = async (conn: Connection, p: ClientEvents['open_direct'], ref: Ref | undefined): Promise<void> => {
    const peer = await known(p.user);
    if (peer.toLowerCase() === conn.user.toLowerCase()) throw new ClientError('forbidden', 'A direct room is between two users: name someone else.');
    const room = directRoomName(conn.user, peer);
    if (!conn.rooms.has(room) && conn.rooms.size >= config.maxRoomsPerConnection) throw new ClientError('too_many_rooms');
    const out = await members.must({ type: 'direct', room, user: conn.user, peer });
    if (conn.open) members.follow(conn, room, null);
    // Everyone made a member here (both, for a new room) follows it on their open connections.
    const added = out.events.flatMap((e) => (e.type === 'room_created' ? e.members : e.type === 'member_joined' ? [e.user] : []));
    for (const user of added) {
      const other = user.toLowerCase() === conn.user.toLowerCase() ? peer : conn.user;
      members.invited(user, { ...members.membershipOf(out, 'member', other), by: conn.user }, conn);
    }
    await replyWithSeq(ctx, conn, room, ref, (seq) => conn.send('direct_opened', { room, user: peer, seq }, ref));
  };

  /** The ack of a change: once its last event went to the room's members here (no event: the room's seq). */
  const ack = async (conn: Connection, out: ChangeDone, ref: Ref | undefined): Promise<void> => {
    if (ref === undefined) return;
    const last = out.events.at(-1);
    const delivered = last === undefined ? undefined : rooms.reached(out.room.name, last.seq);
    if (delivered !== undefined) await atMost(delivered, ACK_WAIT_MS);
    conn.send('ack', { ref, room: out.room.name, seq: last?.seq ?? out.room.lastSeq }, ref);
  };

  /** One moderation event: the change, then its ack. */
  const moderate = async (conn: Connection, op: MembershipOp, ref: Ref | undefined): Promise<void> => ack(conn, await members.must(op), ref);

  return {
    create_room: createRoom,
    open_direct: openDirect,
    invite: async (conn, p, ref) => {
      const room = roomName(p.room);
      const user = await known(p.user);
      const out = await members.must({ type: 'invite', room, by: conn.user, user });
      if (out.events.length > 0) members.invited(user, { ...members.membershipOf(out, 'member'), by: conn.user });
      await ack(conn, out, ref);
    },
    kick: async (conn, p, ref) => moderate(conn, { type: 'kick', room: roomName(p.room), by: conn.user, user: p.user, reason: p.reason }, ref),
    ban: async (conn, p, ref) => moderate(conn, { type: 'ban', room: roomName(p.room), by: conn.user, user: await known(p.user), reason: p.reason }, ref),
    unban: async (conn, p, ref) => moderate(conn, { type: 'unban', room: roomName(p.room), by: conn.user, user: p.user }, ref),
    mute: async (conn, p, ref) =>
      moderate(conn, { type: 'mute', room: roomName(p.room), by: conn.user, user: p.user, until: p.durationMs === undefined ? MUTED_FOR_GOOD : Date.now() + p.durationMs }, ref),
    unmute: async (conn, p, ref) => moderate(conn, { type: 'unmute', room: roomName(p.room), by: conn.user, user: p.user }, ref),
    set_role: async (conn, p, ref) => moderate(conn, { type: 'set_role', room: roomName(p.room), by: conn.user, user: p.user, role: p.role }, ref),
  };
}
