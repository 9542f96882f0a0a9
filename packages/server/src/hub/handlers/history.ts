/**
 * history: a page of a room's messages. At most `limit` messages, and at most MAX_HISTORY_BYTES
 * of them (always at least one), and at most half the send queue, so that one small request
 * cannot pull megabytes nor close its own reader; the client pages on with `before` as always.
 */
import { type ClientEvents, MAX_HISTORY_BYTES, type Ref, type TimelineItem } from '@parley/protocol';
import type { Connection } from '../../connection.js';
import { ClientError } from '../errors.js';
import { followedRoom, type Handlers, type HubContext } from './context.js';

/**
 * History requests one connection may have in flight: each may read 100 long messages, and a
 * client asking dozens at once (in one TCP read) would have them all read before any reply is
 * counted against its send queue. More are answered `rate_limited` (the SDK retries them).
 */
export const MAX_HISTORY_IN_FLIGHT = 4;
/** History page size when the client names none. */
export const DEFAULT_HISTORY_PAGE = 50;

/** Bytes of a message as JSON (what it adds to a history page). */
const encodedSize = (m: TimelineItem): number => Buffer.byteLength(JSON.stringify(m));

/** How many of `page`'s messages fit in `budget` bytes (at least one). */
export function fitting(page: readonly TimelineItem[], budget: number): number {
  let bytes = 0;
  let n = 0;
  for (const m of page) {
    bytes += encodedSize(m);
    if (bytes > budget && n > 0) break;
    n++;
  }
  return n;
}

export function historyHandlers(ctx: HubContext): Pick<Handlers, 'history'> {
  const { config, store } = ctx;
  /** History requests being read from the store, per connection. */
  const inFlight = new WeakMap<Connection, number>();

  const history = async (conn: Connection, p: ClientEvents['history'], ref: Ref | undefined): Promise<void> => {
    const room = await followedRoom(ctx, conn, p.room);
    const n = inFlight.get(conn) ?? 0;
    if (n >= MAX_HISTORY_IN_FLIGHT) {
      ctx.metrics.rateLimited.inc({ limit: 'history' });
      throw new ClientError('rate_limited', `At most ${MAX_HISTORY_IN_FLIGHT} history requests at a time per connection.`);
    }
    inFlight.set(conn, n + 1);
    let page: TimelineItem[];
    try {
      page = await store.history(room, { before: p.before, limit: p.limit ?? DEFAULT_HISTORY_PAGE });
    } finally {
      inFlight.set(conn, (inFlight.get(conn) ?? 1) - 1);
    }
    const fit = fitting(page, Math.min(MAX_HISTORY_BYTES, config.sendQueueMaxBytes / 2));
    conn.send('history', { room, messages: fit === page.length ? page : page.slice(0, fit) }, ref);
  };

  return { history };
}
