import type { Config } from '../config.js';
import type { RedisShard } from '../redis/index.js';
import { MemoryTickets } from './memory.js';
import { RedisTickets } from './redis.js';
import type { Tickets } from './tickets.js';
import { chooseDriver } from '../driver.js';

export { ticketFor, type Ticket, type Tickets } from './tickets.js';
export { MemoryTickets } from './memory.js';
export { RedisTickets } from './redis.js';

/** The tickets the config names (`tickets`), not yet initialized; `redis()` is the node's shard. */
export function createTickets(config: Pick<Config, 'tickets' | 'ticketTtlMs' | 'redisPrefix'>, redis: () => RedisShard): Tickets {
  return chooseDriver(config.tickets, {
    memory: (): Tickets => new MemoryTickets(config.ticketTtlMs),
    redis: (): Tickets => new RedisTickets(redis(), config.ticketTtlMs, config.redisPrefix),
  });
}
