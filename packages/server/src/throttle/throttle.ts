/**
 * The attempt throttle: how Parley slows down guessing (logins) and mass sign-ups without ever
 * locking anyone out for good (OWASP Authentication Cheat Sheet: throttle per account and
 * address, with growing delays rather than a hard lock).
 *
 * Implementations: `memory.ts` (one node) and `redis.ts` (shared by every node). Every
 * implementation passes the contract suite in test/throttle.contract.ts.
 *
 * Guarantees every implementation gives:
 * - Attempts are counted before they are evaluated: `attempt` counts and answers in one atomic
 *   step, so however many requests of a key arrive at once (on one node or on many), at most
 *   `policy.free` of them go ahead without a delay.
 * - From the `free`-th counted attempt on, the key must wait before its next attempt: `baseMs`,
 *   then twice that after the next one, and so on, up to `maxMs`. A refused attempt is not
 *   counted and does not lengthen the wait.
 * - A key is forgotten `policy.windowMs` after its wait ends (or after its last attempt, when it
 *   had none), so one that stops trying starts afresh.
 * - While the backend is down, every call rejects with a BackendUnavailableError (HTTP 503
 *   `unavailable`); nothing waits for a reconnect.
 */
import type { Driver } from '../driver.js';

export interface ThrottlePolicy {
  /** Attempts that go ahead without a delay. */
  free: number;
  /** How long a key is remembered after its last attempt (or the end of its wait), ms. */
  windowMs: number;
  /** The first delay, once `free` attempts were counted, ms; it doubles with every further attempt. */
  baseMs: number;
  /** The longest delay, ms. */
  maxMs: number;
}

export interface Throttle extends Driver {
  /**
   * Counts one attempt of `key` and resolves 0 when it may go ahead; or, without counting it,
   * the milliseconds until the key may try again. `now` is the caller's clock (ms since the
   * epoch), so that every node of a cluster measures delays alike.
   */
  attempt(key: string, policy: ThrottlePolicy, now?: number): Promise<number>;
  /** Gives back one counted attempt (a success that must not count against a shared key). */
  refund(key: string): Promise<void>;
  /** Forgets the key (a successful login ends its own delays). */
  reset(key: string): Promise<void>;
}

/** The delay after the attempt that brought a key's count to `count` (0: none). */
export function delayAfter(count: number, policy: ThrottlePolicy): number {
  if (count < policy.free) return 0;
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(count - policy.free, 40));
}
