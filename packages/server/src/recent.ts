/**
 * Keys marked within the last `ttlMs` (sessions revoked, users removed: for as long as a ticket
 * minted before could live). Kept in the order of marking (a repeat moves to the end), so the
 * sweep at each mark stops at the first entry still young.
 */
export class Recent {
  private readonly at = new Map<string, number>();
  constructor(private readonly ttlMs: number) {}

  mark(key: string, now = Date.now()): void {
    for (const [k, t] of this.at) {
      if (now - t <= this.ttlMs) break;
      this.at.delete(k);
    }
    this.at.delete(key);
    this.at.set(key, now);
  }

  has(key: string, now = Date.now()): boolean {
    const t = this.at.get(key);
    return t !== undefined && now - t <= this.ttlMs;
  }
}
