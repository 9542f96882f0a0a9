/** Every client event's handler, grouped by feature; `Handlers` makes sure none is missing. */
import type { Handlers, HubContext } from './context.js';
import { historyHandlers } from './history.js';
import { memberHandlers } from './members.js';
import { messageHandlers } from './messages.js';
import { resumeHandlers } from './resume.js';
import { roomHandlers } from './rooms.js';
import { typingHandlers } from './typing.js';

export type { Handler, Handlers, HubContext } from './context.js';
export { replyWithSeq } from './rooms.js';

export function createHandlers(ctx: HubContext): Handlers {
  return { ...messageHandlers(ctx), ...roomHandlers(ctx), ...typingHandlers(ctx), ...historyHandlers(ctx), ...resumeHandlers(ctx), ...memberHandlers(ctx) };
}
