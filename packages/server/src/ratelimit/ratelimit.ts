/**
 * The rate limiter: fixed-window counts shared by a user's connections (messages per second,
 * config userRateLimitPerSec) and by a session's requests (tickets per minute,
 * ticketRateLimitPerMin). The per-connection token bucket is not here: it is local by nature
 * (connection.ts).
 *
 * Implementations: `memory.ts` (one node) and `redis.ts` (every node at once, so a user cannot
 * multiply the allowance by using several nodes). Every implementation passes the contract
 * suite in test/ratelimit.contract.ts.
 *
 * Guarantees every implementation gives:
 * - Windows of `windowMs` are aligned to the epoch (the first second, the first minute…): every
 *   node of a cluster counts into the same window.
 * - Within one window, exactly `limit` hits of a key resolve true, however many arrive at once
 *   (the count and the answer are one atomic step); every further one resolves false. A key's
 *   count starts afresh in the next window. Keys, and window lengths of one key, are
 *   independent.
 * - `hit` never rejects: while the backend is down it fails open (resolves true, so only the
 *   per-connection limit applies and the node keeps serving), `healthy` is false and the
 *   outage is reported once to `onBackgroundError`.
 */
import type { Driver } from '../driver.js';

export interface RateLimiter extends Driver {
  /**
   * Counts one event of `key`; resolves false when `limit` events were already counted in the
   * current window (windows of `windowMs`, aligned to the epoch: the first second, minute…).
   */
  hit(key: string, limit: number, windowMs?: number): Promise<boolean>;
}

/** The name the server used before the rate limiter was a driver folder. */
export type UserRateLimit = RateLimiter;
