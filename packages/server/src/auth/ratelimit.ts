/**
 * Per-user message rate limit across all of a user's connections: a fixed one-second window.
 * MemoryRateLimit counts on this node; RedisRateLimit counts on every node at once, so a user
 * cannot multiply the allowance by opening connections to several nodes.
 */
import type { Redis } from 'ioredis';

export interface UserRateLimit {
  /** Counts one event of `key`; resolves false when `limit` events were already counted this second. */
  hit(key: string, limit: number): Promise<boolean>;
  close(): Promise<void>;
}

export class MemoryRateLimit implements UserRateLimit {
  private readonly windows = new Map<string, { second: number; count: number }>();
  private readonly sweeper: NodeJS.Timeout;

  constructor() {
    this.sweeper = setInterval(() => {
      const now = Math.floor(Date.now() / 1000);
      for (const [k, w] of this.windows) if (w.second < now) this.windows.delete(k);
    }, 5000);
    this.sweeper.unref();
  }

  async hit(key: string, limit: number): Promise<boolean> {
    const second = Math.floor(Date.now() / 1000);
    const w = this.windows.get(key);
    if (w === undefined || w.second !== second) {
      this.windows.set(key, { second, count: 1 });
      return true;
    }
    return ++w.count <= limit;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }
}

const HIT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], 2000) end
return n`;

export class RedisRateLimit implements UserRateLimit {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'parley:',
  ) {
    redis.defineCommand('parleyRateHit', { numberOfKeys: 1, lua: HIT });
  }

  /** Fails open: while Redis is down, only the per-connection limit applies (the node keeps serving). */
  async hit(key: string, limit: number): Promise<boolean> {
    const second = Math.floor(Date.now() / 1000);
    try {
      const n = await (this.redis as unknown as { parleyRateHit(k: string): Promise<number> }).parleyRateHit(`${this.prefix}rate:${key}:${second}`);
      return n <= limit;
    } catch {
      return true;
    }
  }

  async close(): Promise<void> {}
}
