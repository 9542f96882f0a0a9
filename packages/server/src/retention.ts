/**
 * Retention: deletes messages past historyMaxAgeDays / historyMaxPerRoom, dedupe keys past
 * dedupeWindowMs and expired sessions, every retentionIntervalMs. It deletes in small chunks and
 * yields to the event loop between them, so a large clean-up never blocks message traffic.
 */
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Store } from './store/store.js';

/** Rows deleted per store call; small enough that one call is a short transaction. */
const CHUNK = 500;
const DAY_MS = 86_400_000;

export class Retention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private stopped = false;

  constructor(
    private readonly config: Pick<Config, 'historyMaxAgeDays' | 'historyMaxPerRoom' | 'dedupeWindowMs' | 'retentionIntervalMs'>,
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.runOnce().catch((err: unknown) => this.log.warn({ err }, 'retention failed; will retry')), this.config.retentionIntervalMs);
    this.timer.unref();
  }

  /** One full pass; resolves how many rows were deleted. Concurrent calls share one pass. */
  runOnce(): Promise<number> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(): Promise<number> {
    const now = Date.now();
    const { historyMaxAgeDays, historyMaxPerRoom, dedupeWindowMs } = this.config;
    const query = {
      olderThan: historyMaxAgeDays > 0 ? now - historyMaxAgeDays * DAY_MS : undefined,
      maxPerRoom: historyMaxPerRoom > 0 ? historyMaxPerRoom : undefined,
      dedupeOlderThan: now - dedupeWindowMs,
      limit: CHUNK,
    };
    let total = 0;
    for (;;) {
      if (this.stopped) break;
      const n = await this.store.prune(query);
      total += n;
      if (n < CHUNK) break;
      await new Promise((r) => setImmediate(r));
    }
    total += await this.store.deleteExpiredSessions(now);
    if (total > 0) this.log.debug({ deleted: total }, 'retention pass');
    return total;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }
}
