import type { Config } from '../config.js';
import type { RedisShard } from '../redis/index.js';
import { MemoryRateLimit } from './memory.js';
import type { RateLimiter } from './ratelimit.js';
import { RedisRateLimit } from './redis.js';
import { chooseDriver } from '../driver.js';

export type { RateLimiter, UserRateLimit } from './ratelimit.js';
export { MemoryRateLimit } from './memory.js';
export { RedisRateLimit } from './redis.js';

/** The rate limiter the config names (`rateLimiter`), not yet initialized; `redis()` is the node's shard. */
export function createRateLimiter(config: Pick<Config, 'rateLimiter' | 'redisPrefix'>, redis: () => RedisShard): RateLimiter {
  return chooseDriver(config.rateLimiter, {
    memory: (): RateLimiter => new MemoryRateLimit(),
    redis: (): RateLimiter => new RedisRateLimit(redis(), config.redisPrefix),
  });
}
