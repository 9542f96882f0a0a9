/** Rate-limit windows in this process's memory: one node. Ended windows are swept every 5 s. */
import { MemoryDriver } from '../driver.js';
import type { RateLimiter } from './ratelimit.js';

const SWEEP_MS = 5000;

type Window = { window: number; ends: number; count: number };

export class MemoryRateLimit extends MemoryDriver<Window> implements RateLimiter {
  constructor() {
    super(SWEEP_MS, (w) => w.ends);
  }

  async hit(key: string, limit: number, windowMs = 1000): Promise<boolean> {
    const now = Date.now();
    const window = Math.floor(now / windowMs);
    const k = `${windowMs}:${key}`;
    const w = this.entries.get(k);
    if (w === undefined || w.window !== window) {
      this.entries.set(k, { window, ends: (window + 1) * windowMs, count: 1 });
      return limit >= 1;
    }
    return ++w.count <= limit;
  }
}
