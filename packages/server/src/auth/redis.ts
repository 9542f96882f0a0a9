/** Tickets in Redis, so every node shares them; the Redis client set-up. */
import { Redis } from 'ioredis';
import { StoreError } from '../store/store.js';
import type { SessionRecord } from '../store/store.js';
import { newSecret, ticketFor, type Ticket, type Tickets } from './tokens.js';

/** Runs a Redis call; a failure (Redis down) becomes StoreError('unavailable'): HTTP 503. */
async function guarded<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new StoreError('unavailable', `redis ${what}: ${(err as Error).message}`, { cause: err });
  }
}

export function redisClient(url: string): Redis {
  const r = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: (n: number) => Math.min(100 * 2 ** Math.min(n, 6), 5000) });
  r.on('error', () => undefined); // commands fail fast while down; ioredis reconnects
  return r;
}

/** A ticket is a key with a TTL; GETDEL redeems it atomically, once, on any node. */
export class RedisTickets implements Tickets {
  constructor(
    private readonly redis: Redis,
    private readonly ttlMs: number,
    private readonly prefix = 'parley:',
  ) {}

  async issue(session: SessionRecord): Promise<string> {
    const otp = newSecret();
    const ticket = ticketFor(session, this.ttlMs);
    await guarded('ticket', () => this.redis.set(`${this.prefix}ticket:${otp}`, JSON.stringify(ticket), 'PX', Math.max(1, ticket.expiresAt - Date.now())));
    return otp;
  }

  async take(otp: string): Promise<Ticket | undefined> {
    const raw = await guarded('ticket', () => this.redis.getdel(`${this.prefix}ticket:${otp}`));
    if (raw === null) return undefined;
    const t = JSON.parse(raw) as Ticket;
    return t.expiresAt > Date.now() ? t : undefined;
  }

  async close(): Promise<void> {}
}
