/**
 * Fixed-window rate limits: per user across all of a user's connections (messages per second),
 * per session (tickets per minute). MemoryRateLimit counts on this node; RedisRateLimit counts
 * on every node at once, so a user cannot multiply the allowance by using several nodes.
 */
import type { Redis } from 'ioredis';

export interface UserRateLimit {
  /**
   * Counts one event of `key`; resolves false when `limit` events were already counted in the
   * current window (windows of `windowMs`, aligned to the epoch: the first second, minute…).
   */
  hit(key: string, limit: number, windowMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

export class MemoryRateLimit implements UserRateLimit {
  private readonly windows = new Map<string, { window: number; ends: number; count: number }>();
  private readonly sweeper: NodeJS.Timeout;

  constructor() {
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const [k, w] of this.windows) if (w.ends <= now) this.windows.delete(k);
    }, 5000);
    this.sweeper.unref();
  }

  async hit(key: string, limit: number, windowMs = 1000): Promise<boolean> {
    const now = Date.now();
    const window = Math.floor(now / windowMs);
    const k = `${windowMs}:${key}`;
    const w = this.windows.get(k);
    if (w === undefined || w.window !== window) {
      this.windows.set(k, { window, ends: (window + 1) * windowMs, count: 1 });
      return limit >= 1;
    }
    return ++w.count <= limit;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }
}

const HIT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

export class RedisRateLimit implements UserRateLimit {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'parley:',
  ) {
    redis.defineCommand('parleyRateHit', { numberOfKeys: 1, lua: HIT });
  }

  /** Fails open: while Redis is down, only the per-connection limit applies (the node keeps serving). */
  async hit(key: string, limit: number, windowMs = 1000): Promise<boolean> {
    const window = Math.floor(Date.now() / windowMs);
    try {
      const n = await (this.redis as unknown as { parleyRateHit(k: string, ttlMs: number): Promise<number> }).parleyRateHit(`${this.prefix}rate:${windowMs}:${key}:${window}`, 2 * windowMs);
      return n <= limit;
    } catch {
      return true;
    }
  }

  async close(): Promise<void> {}
}
