/** The tickets contract against each driver: memory, and Redis (the local server, a key prefix of its own). */
import { MemoryTickets, RedisTickets, type Tickets } from '../src/tickets/index.js';
import type { RedisShard } from '../src/redis/index.js';
import { dropPrefix, freshPrefix, redisShard, UNREACHABLE_REDIS_URL } from '@parley/testing/redis';
import { ticketsContract } from './tickets.contract.js';

ticketsContract('memory', async () => ({
  shared: false,
  open: async (ttlMs) => {
    const t = new MemoryTickets(ttlMs);
    await t.init();
    return t;
  },
  destroy: async () => undefined,
}));

ticketsContract('redis', async () => {
  const prefix = freshPrefix();
  const shards: RedisShard[] = [];
  const open = async (url: string | undefined, ttlMs: number): Promise<Tickets> => {
    const shard = redisShard(url);
    shards.push(shard);
    const t = new RedisTickets(shard, ttlMs, prefix);
    await t.init();
    return t;
  };
  return {
    shared: true,
    open: (ttlMs) => open(undefined, ttlMs),
    down: () => open(UNREACHABLE_REDIS_URL, 10_000),
    destroy: async () => {
      await Promise.all(shards.map((s) => s.close()));
      await dropPrefix(prefix);
    },
  };
}, true);
