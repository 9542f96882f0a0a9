/** What every handler may use: the units of the hub it acts through. */
import type { Logger } from 'pino';
import { type ClientEvents, type ClientEventType, type Ref, roomKey } from '@parley/protocol';
import type { Config } from '../../config.js';
import type { Connection } from '../../connection.js';
import type { Metrics } from '../../metrics.js';
import type { UserRateLimit } from '../../ratelimit/index.js';
import type { Store } from '../../store/store.js';
import type { MessageWriter } from '../../writer.js';
import { ClientError } from '../errors.js';
import type { Members } from '../members.js';
import type { RoomPresence } from '../presence.js';
import type { Rooms } from '../rooms.js';

export interface HubContext {
  readonly config: Config;
  readonly store: Store;
  readonly log: Logger;
  readonly rooms: Rooms;
  readonly members: Members;
  readonly presence: RoomPresence;
  readonly writer: MessageWriter;
  readonly userLimit: UserRateLimit;
  readonly metrics: Metrics;
}

/** Handles one validated client event. A throw (or rejection) is answered by the router. */
export type Handler<K extends ClientEventType> = (conn: Connection, payload: ClientEvents[K], ref: Ref | undefined) => void | Promise<void>;

/** One handler per client event type: the compiler sees to it that none is missing. */
export type Handlers = { [K in ClientEventType]: Handler<K> };

/** The room's one name (roomKey: NFKC, lower case), or invalid_room. */
export function roomName(raw: string): string {
  const room = roomKey(raw);
  if (room === undefined) throw new ClientError('invalid_room');
  return room;
}

/**
 * The room, which `conn` must follow; else `not_in_room` when its user could follow it, and the
 * one `forbidden` answer when the room is private or direct and not theirs, or does not exist.
 */
export async function followedRoom(ctx: HubContext, conn: Connection, raw: string): Promise<string> {
  const room = roomName(raw);
  await ctx.members.followed(conn, room); // after the joins sent before this event
  return room;
}
