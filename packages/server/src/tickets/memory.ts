/** Tickets in this process's memory: one node. Expired ones are swept every few seconds. */
import { newSecret } from '../auth/tokens.js';
import { MemoryDriver } from '../driver.js';
import { ticketFor, type Ticket, type Tickets } from './tickets.js';

export class MemoryTickets extends MemoryDriver<Ticket> implements Tickets {
  constructor(private readonly ttlMs: number) {
    super(Math.min(ttlMs, 5000), (t) => t.expiresAt);
  }

  async issue(identity: Ticket): Promise<string> {
    const otp = newSecret();
    this.entries.set(otp, ticketFor(identity, this.ttlMs));
    return otp;
  }

  async take(otp: string): Promise<Ticket | undefined> {
    const now = Date.now();
    const t = this.entries.get(otp);
    if (t === undefined) return undefined;
    this.entries.delete(otp);
    return t.expiresAt > now ? t : undefined;
  }
}
