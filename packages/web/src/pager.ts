/**
 * History paging: a room opens with its newest PAGE messages; scrolling near the top fetches the
 * PAGE before the oldest shown, until the room's first message.
 */
import type { ParleyClient } from '@parley/client';
import { MAX_HISTORY_PAGE } from '@parley/protocol';
import { errorText } from './errors.js';
import type { MessageView } from './messages.js';
import type { RoomModel } from './model.js';

/** Messages fetched per history page. */
const PAGE = Math.min(50, MAX_HISTORY_PAGE);

export interface PagerHost {
  readonly client: ParleyClient;
  readonly messages: MessageView;
  /** The name of the room shown, if any. */
  currentName(): string | undefined;
  /** The room shown, if any. */
  currentRoom(): RoomModel | undefined;
  /** Whether the screen has stopped (nothing is rendered any more). */
  stopped(): boolean;
  notice(text: string): void;
}

export class Pager {
  constructor(private readonly host: PagerHost) {}

  private isCurrent(room: RoomModel): boolean {
    return room.name === this.host.currentName();
  }

  /** Loads the room's newest page (when it opens, and after a gap). */
  async loadLatest(room: RoomModel): Promise<void> {
    const { client, messages } = this.host;
    if (room.loading || client.state !== 'open') return;
    room.loading = true;
    if (this.isCurrent(room)) messages.render(room, 'update');
    try {
      const page = await client.history(room.name, { limit: PAGE });
      room.add(page);
      room.loaded = true;
      room.hasMore = page.length >= PAGE && (page.at(-1)?.seq ?? 1) > 1;
    } catch (err) {
      this.host.notice(`Could not load #${room.name}: ${errorText(err)}`);
    } finally {
      room.loading = false;
    }
    if (this.isCurrent(room) && !this.host.stopped()) {
      messages.render(room, 'update');
      if (messages.needsMore()) void this.loadOlder();
    }
  }

  /** Loads the page before the oldest message shown in the current room, if there is one. */
  async loadOlder(): Promise<void> {
    const { client, messages } = this.host;
    const room = this.host.currentRoom();
    if (room === undefined || !room.loaded || room.loading || !room.hasMore || client.state !== 'open') return;
    const before = room.oldestSeq();
    if (before === undefined || before <= 1) {
      room.hasMore = false;
      messages.render(room, 'prepend');
      return;
    }
    room.loading = true;
    messages.render(room, 'prepend');
    let ok = false;
    try {
      const page = await client.history(room.name, { before, limit: PAGE });
      room.add(page);
      room.hasMore = page.length >= PAGE && (page.at(-1)?.seq ?? 1) > 1;
      ok = true;
    } catch (err) {
      this.host.notice(`Could not load older messages: ${errorText(err)}`);
    } finally {
      room.loading = false;
    }
    if (!this.isCurrent(room) || this.host.stopped()) return;
    messages.render(room, 'prepend');
    if (ok && room.hasMore && messages.needsMore()) void this.loadOlder();
  }
}
