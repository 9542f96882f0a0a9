/** typing: to the room's other users, rate-limited per user and room (hub/presence.ts). */
import type { Handlers, HubContext } from './context.js';
import { memberRoom } from './context.js';

export function typingHandlers(ctx: HubContext): Pick<Handlers, 'typing'> {
  return { typing: (conn, p) => ctx.presence.typing(conn, memberRoom(conn, p.room)) };
}
