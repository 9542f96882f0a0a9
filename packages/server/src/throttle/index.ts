import type { Config } from '../config.js';
import type { RedisShard } from '../redis/index.js';
import { MemoryThrottle } from './memory.js';
import { RedisThrottle } from './redis.js';
import type { Throttle } from './throttle.js';
import { chooseDriver } from '../driver.js';

export { delayAfter, type Throttle, type ThrottlePolicy } from './throttle.js';
export { MemoryThrottle } from './memory.js';
export { RedisThrottle } from './redis.js';

/** The throttle the config names (`throttle`), not yet initialized; `redis()` is the node's shard. */
export function createThrottle(config: Pick<Config, 'throttle' | 'redisPrefix'>, redis: () => RedisShard): Throttle {
  return chooseDriver(config.throttle, {
    memory: (): Throttle => new MemoryThrottle(),
    redis: (): Throttle => new RedisThrottle(redis(), config.redisPrefix),
  });
}
