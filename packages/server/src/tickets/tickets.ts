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
import type { SessionRecord } from '../store/store.js';

export interface Ticket {
  user: string;
  /** Hash of the session token the ticket was minted from (so logout can close its sockets). */
  session: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

export interface Tickets extends Driver {
  /** Mints a ticket for the session; it expires after the ticket TTL or with the session, whichever is first. */
  issue(session: SessionRecord): Promise<string>;
  /** Resolves the ticket and deletes it, or undefined when unknown, used or expired. */
  take(otp: string): Promise<Ticket | undefined>;
}

export const ticketFor = (session: SessionRecord, ttlMs: number): Ticket => ({
  user: session.user,
  session: session.tokenHash,
  expiresAt: Math.min(Date.now() + ttlMs, session.expiresAt),
});
