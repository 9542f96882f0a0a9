import type { Config } from '../config.js';
import type { RedisShard } from '../redis/index.js';
import { MemoryRateLimit } from './memory.js';
import type { RateLimiter } from './ratelimit.js';
import { RedisRateLimit } from './redis.js';

export type { RateLimiter, UserRateLimit } from './ratelimit.js';
export { MemoryRateLimit } from './memory.js';
export { RedisRateLimit } from './redis.js';

/** The rate limiter the config names (`rateLimiter`), not yet initialized; `redis()` is the node's shard. */
export function createRateLimiter(config: Pick<Config, 'rateLimiter' | 'redisPrefix'>, redis: () => RedisShard): RateLimiter {
  switch (config.rateLimiter) {
    case 'memory':
      return new MemoryRateLimit();
    case 'redis':
      return new RedisRateLimit(redis(), config.redisPrefix);
  }
}
