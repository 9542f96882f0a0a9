/** The rate limiter contract against each driver: memory, and Redis (the local server, a key prefix of its own). */
import { MemoryRateLimit, RedisRateLimit, type RateLimiter } from '../src/ratelimit/index.js';
import type { RedisShard } from '../src/redis/index.js';
import { rateLimiterContract } from './ratelimit.contract.js';
import { dropPrefix, freshPrefix, REDIS_URL, redisShard, UNREACHABLE_REDIS_URL } from '@parley/testing/redis';

rateLimiterContract('memory', async () => ({
  shared: false,
  open: async () => {
    const r = new MemoryRateLimit();
    await r.init();
    return r;
  },
  server: {},
  destroy: async () => undefined,
}));

rateLimiterContract('redis', async () => {
  const prefix = freshPrefix();
  const shards: RedisShard[] = [];
  const open = async (url?: string): Promise<RateLimiter> => {
    const shard = redisShard(url);
    shards.push(shard);
    const r = new RedisRateLimit(shard, prefix);
    await r.init();
    return r;
  };
  return {
    shared: true,
    open: () => open(),
    down: () => open(UNREACHABLE_REDIS_URL),
    server: { rateLimiter: 'redis', redisUrl: REDIS_URL, redisPrefix: prefix },
    destroy: async () => {
      await Promise.all(shards.map((s) => s.close()));
      await dropPrefix(prefix);
    },
  };
}, true);
