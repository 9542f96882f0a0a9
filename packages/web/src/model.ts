/** What the page knows about each room: its stream by seq (messages and room events), gone ranges, pending sends, presence, typing. */
import type { SeqRange, TimelineItem } from '@parley/protocol';

/** A message typed here and not yet acknowledged by the server. */
export interface Pending {
  key: string;
  room: string;
  message: string;
  /** Local time it was typed (shown until the server's time replaces it). */
  sent: string;
  state: 'pending' | 'failed';
  error?: string;
}

export class RoomModel {
  /** The room's stream: chat messages and room events (`isRoomEvent`), by seq. */
  readonly bySeq = new Map<number, TimelineItem>();
  /** Ranges of seqs the server no longer has (the SDK's `gap` events): shown as a marker where they fall. */
  readonly gone: SeqRange[] = [];
  pending: Pending[] = [];
  /** The latest page of history has been fetched. */
  loaded = false;
  /** Older history may exist before the oldest message held. */
  hasMore = true;
  loading = false;
  unread = 0;
  readonly online = new Set<string>();
  /** Users typing now → the timer that forgets them. */
  readonly typing = new Map<string, ReturnType<typeof setTimeout>>();
  private sortedCache: TimelineItem[] | undefined;

  constructor(readonly name: string) {}

  /** Adds or replaces messages and room events; returns how many were new. */
  add(messages: Iterable<TimelineItem>): number {
    let added = 0;
    for (const m of messages) {
      if (!this.bySeq.has(m.seq)) added++;
      this.bySeq.set(m.seq, m);
    }
    this.sortedCache = undefined;
    return added;
  }

  /** Seqs `from` to `to` are gone for good. */
  addGone(range: SeqRange): void {
    if (!this.gone.some((g) => g.from === range.from && g.to === range.to)) this.gone.push({ from: range.from, to: range.to });
  }

  clearMessages(): void {
    this.bySeq.clear();
    this.gone.length = 0;
    this.sortedCache = undefined;
    this.loaded = false;
    this.hasMore = true;
  }

  /** Delivered messages and room events, oldest first. */
  sorted(): TimelineItem[] {
    this.sortedCache ??= [...this.bySeq.values()].sort((a, b) => a.seq - b.seq);
    return this.sortedCache;
  }

  oldestSeq(): number | undefined {
    return this.sorted()[0]?.seq;
  }

  newestSeq(): number {
    return this.sorted().at(-1)?.seq ?? 0;
  }
}
