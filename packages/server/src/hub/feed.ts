/**
 * The feed of one room on this node: the unit that owns "delivered once, in order".
 *
 * Messages reach a node from two sides: its own writer (stored here) and the broker (stored by
 * another node). Either side may be late or lose one (another node's publication overtaken by a
 * later one, a publication lost while the broker was down). The feed passes each stored
 * message to `deliver` strictly in seq order, each once:
 *
 * - `next` is the next seq it delivers. Until the room's latest seq is read from the store
 *   (`start`), everything is held; afterwards a message below `next` is dropped (delivered
 *   already: our own echo, or a filled gap), the one at `next` is delivered with every held one
 *   that follows it, and one above `next` is held.
 * - A held message waits at most GAP_WAIT_MS for the missing ones; then the missing range is
 *   read from the store (`FeedSource.messagesAfter`, pages of FILL_PAGE) and delivered in order.
 * - A range the store no longer has (pruned by retention) is skipped with a warning: the feed
 *   goes on from the oldest message it holds.
 * - `resync` reads everything after `next - 1` from the store (after a broker outage, when other
 *   nodes' publications may have been lost without a later one to reveal the gap).
 * - A failed store read is logged and retried at the next gap timer; nothing is delivered twice.
 */
import type { Logger } from 'pino';
import type { ChatMessage } from '@parley/protocol';

/** How long a feed waits for a missing seq before reading it from the store. */
export const GAP_WAIT_MS = 150;
/** Messages read from the store per query when filling a gap or resyncing. */
export const FILL_PAGE = 500;

/** Where a feed reads what it missed: the store's part it needs. */
export interface FeedSource {
  lastSeq(room: string): Promise<number>;
  messagesAfter(room: string, afterSeq: number, limit: number): Promise<ChatMessage[]>;
}

export class Feed {
  /** Undefined until the room's latest seq has been read from the store. */
  private next: number | undefined;
  private readonly held = new Map<number, ChatMessage>();
  private gapTimer: NodeJS.Timeout | undefined;
  private filling = false;
  private closed = false;

  constructor(
    readonly room: string,
    private readonly source: FeedSource,
    private readonly deliver: (m: ChatMessage) => void,
    private readonly log: Logger,
  ) {}

  /** Reads the room's latest seq; from then on messages are delivered. Never rejects. */
  async start(): Promise<void> {
    try {
      const latest = await this.source.lastSeq(this.room);
      this.next = latest + 1;
    } catch (err) {
      this.log.warn({ err, room: this.room }, 'cannot read the latest seq; starting from the first message seen');
      const first = Math.min(...this.held.keys());
      this.next = Number.isFinite(first) ? first : undefined;
    }
    if (this.next !== undefined) this.drain();
  }

  /** The seq delivered last (everything up to it was passed on), or undefined before `start`. */
  get delivered(): number | undefined {
    return this.next === undefined ? undefined : this.next - 1;
  }

  /** Messages waiting for a missing seq. */
  get waiting(): number {
    return this.held.size;
  }

  /** The ordering gate (see the module doc). */
  accept(m: ChatMessage): void {
    if (this.closed) return;
    const next = this.next;
    if (next === undefined) {
      this.held.set(m.seq, m);
      return;
    }
    if (m.seq < next) return;
    if (m.seq > next) {
      this.held.set(m.seq, m);
      this.armGap();
      return;
    }
    this.deliver(m);
    this.next = m.seq + 1;
    if (this.held.size > 0) this.drain();
  }

  /** Reads from the store everything after the last delivered seq (see the module doc). */
  resync(): void {
    void this.fill(Number.MAX_SAFE_INTEGER);
  }

  /** The room has no members here any more: nothing more is delivered. */
  close(): void {
    this.closed = true;
    if (this.gapTimer !== undefined) clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
    this.held.clear();
  }

  private drain(): void {
    let next = this.next as number;
    for (const seq of this.held.keys()) if (seq < next) this.held.delete(seq);
    for (let m = this.held.get(next); m !== undefined; m = this.held.get(next)) {
      this.held.delete(next);
      this.deliver(m);
      next++;
    }
    this.next = next;
    if (this.held.size === 0 && this.gapTimer !== undefined) {
      clearTimeout(this.gapTimer);
      this.gapTimer = undefined;
    } else if (this.held.size > 0) this.armGap();
  }

  private armGap(): void {
    if (this.gapTimer !== undefined) return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = undefined;
      if (this.held.size > 0 && !this.filling) void this.fill(Math.min(...this.held.keys()));
    }, GAP_WAIT_MS);
    this.gapTimer.unref();
  }

  /** Reads messages after `next - 1` (up to `until`) from the store and delivers them in order. */
  private async fill(until: number): Promise<void> {
    if (this.filling || this.next === undefined) return;
    this.filling = true;
    try {
      while (this.next !== undefined && this.next < until && !this.closed) {
        const page = await this.source.messagesAfter(this.room, this.next - 1, Math.min(FILL_PAGE, until - this.next));
        if (this.closed) break;
        if (page.length === 0) {
          // The store has nothing in [next, until): pruned by retention. Skip to what we hold.
          if (until !== Number.MAX_SAFE_INTEGER && this.held.size > 0) {
            this.log.warn({ room: this.room, missing: this.next, next: until }, 'seq gap not in the store (pruned?); skipping ahead');
            this.next = until;
            this.drain();
          }
          break;
        }
        for (const m of page) if (m.seq >= this.next) this.held.set(m.seq, m);
        if (!this.held.has(this.next)) this.next = Math.min(...this.held.keys()); // partly pruned
        this.drain();
        if (page.length < FILL_PAGE) break;
      }
    } catch (err) {
      this.log.warn({ err, room: this.room }, 'cannot fill a seq gap from the store; retrying');
    } finally {
      this.filling = false;
    }
    // A new gap may have opened while we were reading: wait for it in turn.
    if (this.held.size > 0 && !this.closed) this.armGap();
  }
}
