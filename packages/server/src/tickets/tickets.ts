/**
 * Tickets: the one-time credentials ("otp") a client trades its session token for (POST
 * /ticket) and presents once, on the WebSocket upgrade.
 *
 * Implementations: `memory.ts` (one node) and `redis.ts` (shared by every node, so a ticket
 * minted on one node opens a socket on any). Every implementation passes the contract suite in
 * test/tickets.contract.ts.
 *
 * Guarantees every implementation gives:
 * - A ticket redeems once: of any number of concurrent `take`s of one ticket, on one node or on
 *   many, exactly one resolves it; the others, and every later one, resolve undefined.
 * - A ticket never outlives its session: it expires ticketTtlMs after `issue` or when the
 *   session does, whichever is first; an expired ticket resolves undefined.
 * - A ticket is 256 random bits (base64url); unknown strings resolve undefined.
 * - While the backend is down, `issue` and `take` reject with a BackendUnavailableError (HTTP
 *   503 `unavailable`, the upgrade refused with `unavailable`); nothing waits for a reconnect.
 */
import type { Driver } from '../driver.js';

/**
 * Whom a ticket is for: the identity it was minted from (identity/identity.ts's Identity has this
 * shape) and when the ticket expires.
 */
export interface Ticket {
  readonly user: string;
  /** The identity's session (for accounts, the hash of the token): logout closes its sockets. */
  readonly session: string;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
}

export interface Tickets extends Driver {
  /** Mints a ticket for the identity; it expires after the ticket TTL or with the identity, whichever is first. */
  issue(identity: Ticket): Promise<string>;
  /** Resolves the ticket and deletes it, or undefined when unknown, used or expired. */
  take(otp: string): Promise<Ticket | undefined>;
}

export const ticketFor = (identity: Ticket, ttlMs: number): Ticket => ({
  user: identity.user,
  session: identity.session,
  expiresAt: Math.min(Date.now() + ttlMs, identity.expiresAt),
});
