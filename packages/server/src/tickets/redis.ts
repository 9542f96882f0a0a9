/** Tickets in Redis, so every node shares them: a ticket is a key with a TTL; GETDEL redeems it atomically, once, on any node. */
import { z } from 'zod';
import { newSecret } from '../auth/tokens.js';
import { guarded } from '../driver.js';
import { ShardDriver, type RedisShard } from '../redis/index.js';
import { ticketFor, type Ticket, type Tickets } from './tickets.js';

/** A stored ticket as JSON; anything else (a foreign key under the prefix) is no ticket. */
const stored = z.object({ user: z.string(), session: z.string(), expiresAt: z.number() });

export class RedisTickets extends ShardDriver implements Tickets {
  constructor(
    redis: RedisShard,
    private readonly ttlMs: number,
    private readonly prefix = 'parley:',
  ) {
    super(redis);
  }

  async issue(identity: Ticket): Promise<string> {
    const otp = newSecret();
    const ticket = ticketFor(identity, this.ttlMs);
    await guarded('tickets', this.driver, () => this.redis.command.set(this.key(otp), JSON.stringify(ticket), 'PX', Math.max(1, ticket.expiresAt - Date.now())));
    return otp;
  }

  async take(otp: string): Promise<Ticket | undefined> {
    const raw = await guarded('tickets', this.driver, () => this.redis.command.getdel(this.key(otp)));
    if (raw === null) return undefined;
    const t = stored.safeParse(JSON.parse(raw));
    return t.success && t.data.expiresAt > Date.now() ? t.data : undefined;
  }

  private key(otp: string): string {
    return `${this.prefix}ticket:${otp}`;
  }
}
