import type { Redis } from 'ioredis';
import { MemoryThrottle } from './memory.js';
import { RedisThrottle } from './redis.js';
import type { Throttle } from './throttle.js';

export { delayAfter, type Throttle, type ThrottlePolicy } from './throttle.js';
export { MemoryThrottle } from './memory.js';
export { RedisThrottle } from './redis.js';

/** Shared by every node when there is a Redis (`redisUrl`), else this node's memory. */
export function createThrottle(redis: Redis | undefined, prefix: string): Throttle {
  return redis === undefined ? new MemoryThrottle() : new RedisThrottle(redis, prefix);
}
