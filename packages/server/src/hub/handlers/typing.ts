/** typing: to the room's other users, rate-limited per user and room (hub/presence.ts). */
import type { Handlers, HubContext } from './context.js';
import { followedRoom } from './context.js';

export function typingHandlers(ctx: HubContext): Pick<Handlers, 'typing'> {
  return {
    typing: async (conn, p) => {
      const room = conn.rooms.has(p.room) ? p.room : await followedRoom(ctx, conn, p.room);
      ctx.presence.typing(conn, room);
    },
  };
}
