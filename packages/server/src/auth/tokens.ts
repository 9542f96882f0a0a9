/**
 * Random secrets: session tokens (bearer) and one-time WebSocket tickets.
 * Both are 256 random bits, base64url. Only a SHA-256 of a token is ever stored.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Identity } from '../identity/identity.js';

const SECRET_BYTES = 32;
/** Random bytes are drawn from the CSPRNG 128 secrets at a time (one call instead of 128). */
let pool = Buffer.alloc(0);
let used = 0;

export const newSecret = (): string => {
  if (used + SECRET_BYTES > pool.length) {
    pool = randomBytes(SECRET_BYTES * 128);
    used = 0;
  }
  const secret = pool.toString('base64url', used, used + SECRET_BYTES);
  pool.fill(0, used, used + SECRET_BYTES); // a handed-out secret does not stay in memory here
  used += SECRET_BYTES;
  return secret;
};
export const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** What a ticket redeems to: the identity it was minted for, expiring with the ticket. */
export type Ticket = Identity;

export const ticketFor = (identity: Identity, ttlMs: number): Ticket => ({
  user: identity.user,
  session: identity.session,
  expiresAt: Math.min(Date.now() + ttlMs, identity.expiresAt),
});

/**
 * One-time tickets ("otp" in the seed). `take` consumes: a ticket redeems once, then never,
 * on whichever node it is presented. Implementations: MemoryTickets (one node) and
 * RedisTickets (shared by every node).
 */
export interface Tickets {
  /** Mints a ticket for the identity; it expires after the ticket TTL or with the identity, whichever is first. */
  issue(identity: Identity): Promise<string>;
  /** Resolves the ticket and deletes it, or undefined when unknown, used or expired. */
  take(otp: string): Promise<Ticket | undefined>;
  close(): Promise<void>;
}

/** Tickets in this process's memory; expired ones are swept every few seconds. */
export class MemoryTickets implements Tickets {
  private readonly tickets = new Map<string, Ticket>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly ttlMs: number) {
    this.sweeper = setInterval(() => this.sweep(Date.now()), Math.min(ttlMs, 5000));
    this.sweeper.unref();
  }

  async issue(identity: Identity): Promise<string> {
    const otp = newSecret();
    this.tickets.set(otp, ticketFor(identity, this.ttlMs));
    return otp;
  }

  async take(otp: string): Promise<Ticket | undefined> {
    const now = Date.now();
    const t = this.tickets.get(otp);
    if (t === undefined) return undefined;
    this.tickets.delete(otp);
    return t.expiresAt > now ? t : undefined;
  }

  get size(): number {
    return this.tickets.size;
  }

  private sweep(now: number): void {
    for (const [k, t] of this.tickets) if (t.expiresAt <= now) this.tickets.delete(k);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.tickets.clear();
  }
}
