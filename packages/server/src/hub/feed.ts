/**
 * The feed of one room on this node: the unit that owns "delivered once, in order, whatever the
 * broker does".
 *
 * Messages reach a node from two sides: its own writer (stored here) and the broker (stored by
 * another node). The broker makes delivery fast; the store makes it certain. The broker may be
 * late, reorder two nodes' publications, lose one (a failed publish, an outage), or be down for
 * good; the store has every message. The feed passes each stored message to `deliver` strictly
 * in seq order, each once:
 *
 * - `next` is the next seq it delivers. Until the room's latest seq is read from the store
 *   (`start`, retried with backoff while the store fails), everything is held; afterwards a
 *   message below `next` is dropped (delivered already: our own echo, or a filled gap), the one
 *   at `next` is delivered with every held one that follows it, and one above `next` is held.
 * - A gap is filled from the store with one read of everything after `next - 1` (pages of
 *   FILL_PAGE, up to the room's latest seq, not up to the first held message): at once when our
 *   own writer stored the message above the gap (every lower seq is stored already), after
 *   GAP_WAIT_MS when the broker brought it (the missing one is usually a moment behind).
 * - `catchUp(latest)`: the periodic check (hub/rooms.ts: one query for all of the node's rooms)
 *   says the store's latest seq; a feed behind it for GAP_WAIT_MS fills. This is what delivers
 *   while the broker is down, and what repairs a lost publication in a quiet room.
 * - `resync` fills at once (after a broker outage). A fill asked for while one runs runs again
 *   when it ends, so no request is lost.
 * - A range the store no longer has (pruned by retention) is skipped with a warning: the feed
 *   goes on from the oldest message it has.
 * - A failed store read is retried with backoff (RETRY_MIN_MS doubling to RETRY_MAX_MS), logged
 *   once per failure streak; nothing is delivered twice.
 * - At most MAX_HELD messages wait in memory: past it, newer ones are dropped, to be read from
 *   the store by the fill (which reads up to the latest seq anyway).
 */
import type { Logger } from 'pino';
import type { TimelineItem } from '@parley/protocol';
import { messageOf } from '../failure.js';

/** How long a feed waits for a missing seq from the broker before reading it from the store. */
export const GAP_WAIT_MS = 150;
/** Messages read from the store per query when filling a gap. */
export const FILL_PAGE = 500;
/** Most messages held in memory while a gap is open. */
export const MAX_HELD = 10_000;
/** Backoff of failed store reads. */
export const RETRY_MIN_MS = 250;
export const RETRY_MAX_MS = 5000;

/** Where a feed reads what it missed: the store's part it needs. */
export interface FeedSource {
  lastSeq(room: string): Promise<number>;
  messagesAfter(room: string, afterSeq: number, limit: number): Promise<TimelineItem[]>;
}

/** Why a feed read the store: a gap behind a message, a periodic catch-up, a broker reconnect. */
export type FillReason = 'gap' | 'catch_up' | 'resync';

export interface FeedOptions {
  /** Passes one message on to the room's members. */
  deliver(m: TimelineItem): void;
  /** A fill delivered messages the broker had not brought (counted by the metrics). */
  filled?(reason: FillReason, messages: number): void;
}

interface Waiter {
  seq: number;
  resolve: () => void;
}

export class Feed {
  /** Undefined until the room's latest seq has been read from the store. */
  private next: number | undefined;
  private readonly held = new Map<number, TimelineItem>();
  /** One timer at a time: the gap wait, the catch-up wait, or a retry after a failure. */
  private timer: NodeJS.Timeout | undefined;
  private timerReason: FillReason = 'gap';
  private filling = false;
  /** A fill was asked for while one ran: run again when it ends. */
  private again: FillReason | undefined;
  /** The delay before the next retry; 0 outside a failure streak. */
  private retryMs = 0;
  private closed = false;
  /** Acks waiting for their message to be delivered here (see `reached`). */
  private waiters: Waiter[] = [];

  constructor(
    readonly room: string,
    private readonly source: FeedSource,
    private readonly options: FeedOptions,
    private readonly log: Logger,
  ) {}

  /** Reads the room's latest seq; from then on messages are delivered. Never rejects: a failure is retried. */
  async start(): Promise<void> {
    if (this.next !== undefined || this.closed) return;
    try {
      const latest = await this.source.lastSeq(this.room);
      if (this.closed || this.next !== undefined) return;
      this.next = latest + 1;
      this.recovered();
    } catch (err) {
      this.failed(err, 'cannot read the latest seq of a room; retrying');
      this.schedule(this.retryMs, 'gap');
      return;
    }
    this.drain();
  }

  /** The seq delivered last (everything up to it was passed on), or undefined before `start`. */
  get delivered(): number | undefined {
    return this.next === undefined ? undefined : this.next - 1;
  }

  /** Messages waiting for a missing seq. */
  get waiting(): number {
    return this.held.size;
  }

  /**
   * The ordering gate (see the module doc). `local`: stored by this node's writer, so every lower
   * seq is in the store already and a gap below it is read at once.
   */
  accept(m: TimelineItem, local = false): void {
    if (this.closed) return;
    const next = this.next;
    if (next !== undefined && m.seq < next) return;
    if (next !== undefined && m.seq === next) {
      this.options.deliver(m);
      this.next = next + 1;
      if (this.held.size > 0) this.drain();
      else if (this.waiters.length > 0) this.wake();
      return;
    }
    if (this.held.size < MAX_HELD) this.held.set(m.seq, m);
    if (next === undefined) return; // start() delivers, or retries
    if (local) void this.fill('gap');
    else this.schedule(GAP_WAIT_MS, 'gap');
  }

  /**
   * Resolves once `seq` is delivered here, or the feed closes; undefined when it is already (so
   * the common case costs no promise). The sender's own message goes out before its ack.
   */
  reached(seq: number): Promise<void> | undefined {
    if (this.closed || (this.next !== undefined && this.next > seq)) return undefined;
    return new Promise((resolve) => this.waiters.push({ seq, resolve }));
  }

  /** The periodic check: the store's latest seq of the room is `latest` (see the module doc). */
  catchUp(latest: number): void {
    if (this.closed) return;
    if (this.next === undefined) {
      if (this.timer === undefined && !this.filling) void this.start();
      return;
    }
    if (latest >= this.next) this.schedule(GAP_WAIT_MS, 'catch_up');
  }

  /** Reads from the store everything after the last delivered seq, now (after a broker outage). */
  resync(): void {
    if (this.next === undefined) void this.start();
    else void this.fill('resync');
  }

  /** The room has no members here any more: nothing more is delivered. */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.held.clear();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve();
  }

  private drain(): void {
    let next = this.next as number;
    for (const seq of this.held.keys()) if (seq < next) this.held.delete(seq);
    for (let m = this.held.get(next); m !== undefined; m = this.held.get(next)) {
      this.held.delete(next);
      this.options.deliver(m);
      next++;
    }
    this.next = next;
    if (this.waiters.length > 0) this.wake();
    if (this.held.size > 0) this.schedule(GAP_WAIT_MS, 'gap');
    else if (this.timer !== undefined && this.retryMs === 0 && this.timerReason === 'gap') {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  /** Resolves the waiters whose seq is delivered. */
  private wake(): void {
    const next = this.next ?? 0;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.seq < next) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  /** Arms the one timer (unless one is armed): then fills (or starts, before `start` succeeded). */
  private schedule(ms: number, reason: FillReason): void {
    if (this.timer !== undefined || this.closed) return;
    this.timerReason = reason;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.next === undefined) void this.start();
      else void this.fill(reason);
    }, ms);
    this.timer.unref();
  }

  /** Reads everything after `next - 1` from the store, up to the latest seq, and delivers it in order. */
  private async fill(reason: FillReason): Promise<void> {
    if (this.next === undefined || this.closed) return;
    if (this.filling) {
      this.again ??= reason;
      return;
    }
    this.filling = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    let delivered = 0;
    let why: FillReason | undefined = reason;
    try {
      while (why !== undefined && !this.closed) {
        this.again = undefined;
        delivered += await this.readAll();
        if (delivered > 0) this.options.filled?.(why, delivered);
        delivered = 0;
        why = this.again;
      }
      this.recovered();
    } catch (err) {
      if (delivered > 0) this.options.filled?.(reason, delivered);
      this.failed(err, 'cannot read a room from the store to fill a gap; retrying');
      this.filling = false;
      this.schedule(this.retryMs, reason);
      return;
    }
    this.filling = false;
    // Something arrived above a new gap while we read: wait for it in turn.
    if (this.held.size > 0 && !this.closed) this.schedule(GAP_WAIT_MS, 'gap');
  }

  /** One pass of a fill: pages from `next` until the store has no more. Resolves how many were delivered. */
  private async readAll(): Promise<number> {
    let delivered = 0;
    for (;;) {
      const from = this.next as number;
      const page = await this.source.messagesAfter(this.room, from - 1, FILL_PAGE);
      if (this.closed) return delivered;
      const first = page[0];
      if (first === undefined) {
        // The store has nothing from `next` on, yet something above it is held: pruned by retention.
        if (this.held.size > 0) this.skipTo(Math.min(...this.held.keys()));
        return delivered;
      }
      if (first.seq > (this.next as number)) this.skipTo(first.seq);
      for (const m of page) if (m.seq >= (this.next as number)) this.held.set(m.seq, m);
      const before = this.next as number;
      this.drain();
      delivered += (this.next as number) - before;
      if (page.length < FILL_PAGE) return delivered;
    }
  }

  /** The store no longer has seqs `next` … `to - 1` (retention): go on from `to`. */
  private skipTo(to: number): void {
    const next = this.next as number;
    if (to <= next) return;
    this.log.warn({ room: this.room, missing: { from: next, to: to - 1 } }, 'seq range not in the store (pruned by retention); skipping it');
    this.next = to;
  }

  private failed(err: unknown, what: string): void {
    if (this.retryMs === 0) this.log.warn({ room: this.room, err: messageOf(err) }, what);
    this.retryMs = this.retryMs === 0 ? RETRY_MIN_MS : Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  private recovered(): void {
    if (this.retryMs > 0) this.log.info({ room: this.room }, 'room read from the store again');
    this.retryMs = 0;
  }
}
