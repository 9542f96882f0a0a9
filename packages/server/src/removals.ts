/**
 * Account removals reach running servers: `parley user remove` works on the store, offline, so
 * every node reads the removals the store records (Store.userRemovalsSince) once a second,
 * closes the removed user's sockets with 4501 (user_removed, terminal) and refuses the tickets
 * minted before (Hub.removeUser). Their sessions are gone from the store already, so no token of
 * theirs mints a ticket again.
 *
 * Each poll reads the removals of the last LOOKBACK_MS (or since the last poll that worked, if
 * earlier), so one committed late, or during a store outage, is not missed; ids already acted
 * on are remembered for as long.
 */
import type { Logger } from 'pino';
import { CloseCodes } from '@parley/protocol';
import type { Hub } from './hub/index.js';
import type { Store } from './store/store.js';

/** How often each node reads new removals: the longest a removed user's socket stays open. */
export const REMOVAL_POLL_MS = 1000;
/** How far back each poll reads (commit order and clocks across nodes may differ by this much). */
const LOOKBACK_MS = 60_000;

export class RemovalWatcher {
  private timer: NodeJS.Timeout | undefined;
  /** Removal id → its time, for those acted on within the look-back. */
  private readonly seen = new Map<number, number>();
  private lastOk = Date.now();
  private polling = false;
  private failedAt = 0;

  constructor(
    private readonly store: Store,
    private readonly hub: Hub,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.poll(), REMOVAL_POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }

  /** One read of recent removals; closes the sockets of users removed since the last one. */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    const now = Date.now();
    try {
      const removals = await this.store.userRemovalsSince(Math.min(this.lastOk, now) - LOOKBACK_MS);
      for (const r of removals) {
        if (this.seen.has(r.id)) continue;
        this.seen.set(r.id, r.at);
        const closed = this.hub.removeUser(r.user, CloseCodes.user_removed, 'account removed');
        this.log.info({ user: r.user, closed }, 'account removed; its connections closed');
      }
      for (const [id, at] of this.seen) if (at < now - 2 * LOOKBACK_MS) this.seen.delete(id);
      this.lastOk = now;
    } catch (err) {
      if (now - this.failedAt > LOOKBACK_MS) {
        this.failedAt = now;
        this.log.warn({ err }, 'cannot read account removals from the store; retrying');
      }
    } finally {
      this.polling = false;
    }
  }
}
