/**
 * Reading what a `resume` did not replay from history: pages of at most MAX_HISTORY_PAGE,
 * newest first, from `before` = top + 1 down to the position, until history has nothing older
 * or `max` messages were read. What it cannot bring is the room's `gap` (Rooms.backfilled).
 */
import { MAX_HISTORY_PAGE, type TimelineItem } from '@parley/protocol';
import type { Backfill } from './rooms.js';

/** Most messages read from history for one room's gap, unless `maxBackfill` says otherwise. */
export const DEFAULT_MAX_BACKFILL = 1000;

/** A page of history: messages and room events with seq below `before`, newest first, at most `limit`. */
export type HistoryPage = (room: string, before: number, limit: number) => Promise<TimelineItem[]>;

/**
 * The messages of `b.room` history still holds between `b.after` (excluded) and `b.top`
 * (included), at most `max` of them (the newest), or undefined once `stale()` says the room no
 * longer waits for them (the connection dropped, the room was left).
 */
export async function readBackfill(b: Backfill, max: number, page: HistoryPage, stale: () => boolean): Promise<TimelineItem[] | undefined> {
  const got: TimelineItem[] = [];
  let before = b.top + 1;
  while (before > b.after + 1 && got.length < max) {
    const limit = Math.min(MAX_HISTORY_PAGE, max - got.length, before - b.after - 1);
    const messages = await page(b.room, before, limit);
    if (stale()) return undefined;
    let oldest = before;
    for (const m of messages) {
      if (m.seq >= before || m.seq <= b.after) continue;
      got.push(m);
      oldest = Math.min(oldest, m.seq);
    }
    // A short page: history has nothing older.
    if (messages.length < limit || oldest === before) break;
    before = oldest;
  }
  return got;
}
