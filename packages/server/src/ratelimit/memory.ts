/** Rate-limit windows in this process's memory: one node. Ended windows are swept every 5 s. */
import type { RateLimiter } from './ratelimit.js';

const SWEEP_MS = 5000;

export class MemoryRateLimit implements RateLimiter {
  readonly driver = 'memory';
  readonly healthy = true;
  onHealth?: ((healthy: boolean) => void) | undefined;
  onBackgroundError?: ((err: Error) => void) | undefined;
  private readonly windows = new Map<string, { window: number; ends: number; count: number }>();
  private sweeper: NodeJS.Timeout | undefined;

  async init(): Promise<void> {
    this.sweeper ??= setInterval(() => {
      const now = Date.now();
      for (const [k, w] of this.windows) if (w.ends <= now) this.windows.delete(k);
    }, SWEEP_MS).unref();
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
    this.windows.clear();
  }
}
