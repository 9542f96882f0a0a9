/**
 * Failed-login throttle: a fixed window per key (user name, client address). Once a key has
 * `max` failures inside the window, attempts are refused with 429 until the window ends.
 */
export class LoginThrottle {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly windowMs: number) {
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const [k, w] of this.windows) if (w.resetAt <= now) this.windows.delete(k);
    }, Math.min(windowMs, 60_000));
    this.sweeper.unref();
  }

  /** Milliseconds until `key` may try again, or 0 when it may try now. */
  blockedFor(key: string, max: number, now = Date.now()): number {
    const w = this.windows.get(key);
    if (w === undefined || w.resetAt <= now || w.count < max) return 0;
    return w.resetAt - now;
  }

  fail(key: string, now = Date.now()): void {
    const w = this.windows.get(key);
    if (w === undefined || w.resetAt <= now) this.windows.set(key, { count: 1, resetAt: now + this.windowMs });
    else w.count++;
  }

  reset(key: string): void {
    this.windows.delete(key);
  }

  close(): void {
    clearInterval(this.sweeper);
  }
}
