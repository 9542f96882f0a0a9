/** Tickets in Redis, so every node shares them; the Redis client set-up. */
import { Redis } from 'ioredis';
import { StoreError } from '../store/store.js';
import type { Identity } from '../identity/identity.js';
import { newSecret, ticketFor, type Ticket, type Tickets } from './tokens.js';

/** Runs a Redis call; a failure (Redis down) becomes StoreError('unavailable'): HTTP 503. */
async function guarded<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new StoreError('unavailable', `redis ${what}: ${(err as Error).message}`, { cause: err });
  }
}

/** Longest wait for one command: a Redis that hangs is as good as down. */
const COMMAND_TIMEOUT_MS = 1000;

/**
 * The client for tickets, throttles and rate limits. While Redis is unreachable its commands
 * fail at once (no offline queue, at most COMMAND_TIMEOUT_MS in flight), so a login or ticket
 * answers 503 and a message is not held up by the per-user limit (which fails open): nothing
 * waits for the reconnect backoff. ioredis reconnects by itself.
 */
export function redisClient(url: string): Redis {
  const r = new Redis(url, {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    commandTimeout: COMMAND_TIMEOUT_MS,
    retryStrategy: (n: number) => Math.min(100 * 2 ** Math.min(n, 6), 5000),
  });
  r.on('error', () => undefined); // commands fail fast while down; ioredis reconnects
  return r;
}

/** Resolves once the client is connected, or after `ms` (the server then starts degraded: 503 until Redis answers). */
export function redisReady(r: Redis, ms: number): Promise<void> {
  if (r.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      r.off('ready', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    r.once('ready', done);
  });
}

/** A ticket is a key with a TTL; GETDEL redeems it atomically, once, on any node. */
export class RedisTickets implements Tickets {
  constructor(
    private readonly redis: Redis,
    private readonly ttlMs: number,
    private readonly prefix = 'parley:',
  ) {}

  async issue(identity: Identity): Promise<string> {
    const otp = newSecret();
    const ticket = ticketFor(identity, this.ttlMs);
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
