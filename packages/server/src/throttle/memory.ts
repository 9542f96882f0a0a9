/** Throttle counters in this process's memory: one node. Expired keys are swept every minute. */
import { MemoryDriver } from '../driver.js';
import { delayAfter, type Throttle, type ThrottlePolicy } from './throttle.js';

interface Entry {
  count: number;
  /** No attempt before this (ms since the epoch). */
  until: number;
  /** Forgotten after this. */
  expires: number;
}

const SWEEP_MS = 60_000;

export class MemoryThrottle extends MemoryDriver<Entry> implements Throttle {
  constructor() {
    super(SWEEP_MS, (e) => e.expires);
  }

  async attempt(key: string, policy: ThrottlePolicy, now = Date.now()): Promise<number> {
    let e = this.entries.get(key);
    if (e !== undefined && e.expires <= now) e = undefined;
    if (e !== undefined && now < e.until) return e.until - now;
    const count = (e?.count ?? 0) + 1;
    const until = now + delayAfter(count, policy);
    this.entries.set(key, { count, until, expires: until + policy.windowMs });
    return 0;
  }

  async refund(key: string): Promise<void> {
    const e = this.entries.get(key);
    if (e !== undefined && e.count > 0) e.count--;
  }

  async reset(key: string): Promise<void> {
    this.entries.delete(key);
  }
}
