/**
 * Failed-login throttle: a fixed window per key (user name, client address). Once a key has
 * `max` failures inside the window, attempts are refused with 429 until the window ends.
 * Implementations: MemoryThrottle (one node) and RedisThrottle (shared by every node).
 */
export interface LoginThrottle {
  /** Milliseconds until `key` may try again, or 0 when it may try now. */
  blockedFor(key: string, max: number): Promise<number>;
  fail(key: string): Promise<void>;
  reset(key: string): Promise<void>;
  close(): Promise<void>;
}

export class MemoryThrottle implements LoginThrottle {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly windowMs: number) {
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const [k, w] of this.windows) if (w.resetAt <= now) this.windows.delete(k);
    }, Math.min(windowMs, 60_000));
    this.sweeper.unref();
  }

  async blockedFor(key: string, max: number): Promise<number> {
    const now = Date.now();
    const w = this.windows.get(key);
    if (w === undefined || w.resetAt <= now || w.count < max) return 0;
    return w.resetAt - now;
  }

  async fail(key: string): Promise<void> {
    const now = Date.now();
    const w = this.windows.get(key);
    if (w === undefined || w.resetAt <= now) this.windows.set(key, { count: 1, resetAt: now + this.windowMs });
    else w.count++;
  }

  async reset(key: string): Promise<void> {
    this.windows.delete(key);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }
}
