/**
 * Outgoing pacing: frames are spaced evenly at PACE of the server's per-connection rate, without
 * bursts: the welcome does not tell the server's burst allowance, and refused frames count
 * towards a flood close (1008, terminal).
 */

/** Outgoing frames are paced at this fraction of the server's rateLimitPerSec. */
const PACE = 0.9;

export class Pacer {
  private tokens = 0;
  private refilledAt = 0;
  private perSec: number | undefined;

  /** A new connection was welcomed with this rateLimitPerSec: one frame may go at once. */
  start(rateLimitPerSec: number): void {
    this.perSec = rateLimitPerSec;
    this.tokens = 1;
    this.refilledAt = Date.now();
  }

  private rate(): number {
    return Math.max(0.1, (this.perSec ?? 1) * PACE);
  }

  /** Adds what accrued since the last refill (at most one frame's worth). */
  refill(): void {
    const now = Date.now();
    this.tokens = Math.min(1, this.tokens + ((now - this.refilledAt) * this.rate()) / 1000);
    this.refilledAt = now;
  }

  /** Whether a frame may go now (after the last refill). */
  get ready(): boolean {
    return this.tokens >= 1;
  }

  /** A frame went. */
  spend(): void {
    this.tokens -= 1;
  }

  /** How long until the next frame may go, in ms (at least 1). */
  waitMs(): number {
    return Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.rate()));
  }
}
