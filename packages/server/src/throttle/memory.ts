/** Throttle counters in this process's memory: one node. Expired keys are swept every minute. */
import { delayAfter, type Throttle, type ThrottlePolicy } from './throttle.js';

interface Entry {
  count: number;
  /** No attempt before this (ms since the epoch). */
  until: number;
  /** Forgotten after this. */
  expires: number;
}

const SWEEP_MS = 60_000;

export class MemoryThrottle implements Throttle {
  readonly driver = 'memory';
  readonly healthy = true;
  onHealth?: ((healthy: boolean) => void) | undefined;
  onBackgroundError?: ((err: Error) => void) | undefined;
  private readonly keys = new Map<string, Entry>();
  private sweeper: NodeJS.Timeout | undefined;

  async init(): Promise<void> {
    this.sweeper ??= setInterval(() => {
      const now = Date.now();
      for (const [k, e] of this.keys) if (e.expires <= now) this.keys.delete(k);
    }, SWEEP_MS).unref();
  }

  async attempt(key: string, policy: ThrottlePolicy, now = Date.now()): Promise<number> {
    let e = this.keys.get(key);
    if (e !== undefined && e.expires <= now) e = undefined;
    if (e !== undefined && now < e.until) return e.until - now;
    const count = (e?.count ?? 0) + 1;
    const until = now + delayAfter(count, policy);
    this.keys.set(key, { count, until, expires: until + policy.windowMs });
    return 0;
  }

  async refund(key: string): Promise<void> {
    const e = this.keys.get(key);
    if (e !== undefined && e.count > 0) e.count--;
  }

  async reset(key: string): Promise<void> {
    this.keys.delete(key);
  }

  /** Keys held now (for tests of the sweep). */
  get size(): number {
    return this.keys.size;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.keys.clear();
  }
}
