/** Tickets in this process's memory: one node. Expired ones are swept every few seconds. */
import { newSecret } from '../auth/tokens.js';
import { ticketFor, type Ticket, type Tickets } from './tickets.js';

export class MemoryTickets implements Tickets {
  readonly driver = 'memory';
  readonly healthy = true;
  onHealth?: ((healthy: boolean) => void) | undefined;
  onBackgroundError?: ((err: Error) => void) | undefined;
  private readonly tickets = new Map<string, Ticket>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly ttlMs: number) {}

  async init(): Promise<void> {
    this.sweeper ??= setInterval(() => this.sweep(Date.now()), Math.min(this.ttlMs, 5000)).unref();
  }

  async issue(identity: Ticket): Promise<string> {
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

  /** Tickets held now (for tests of the sweep). */
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
