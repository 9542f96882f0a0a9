import type { Config } from '../config.js';
import type { RedisShard } from '../redis/index.js';
import { MemoryPresence } from './memory.js';
import { RedisPresence } from './redis.js';
import type { Presence } from './presence.js';
import { chooseDriver } from '../driver.js';

export type { Presence } from './presence.js';
export { MemoryPresence } from './memory.js';
export { RedisPresence } from './redis.js';

/** The presence the config names (`presence`), not yet initialized; `redis()` is the node's shard. */
export function createPresence(config: Pick<Config, 'presence' | 'presenceTtlMs' | 'redisPrefix'>, redis: () => RedisShard): Presence {
  return chooseDriver(config.presence, {
    memory: (): Presence => new MemoryPresence(),
    redis: (): Presence => new RedisPresence(redis(), config.presenceTtlMs, config.redisPrefix),
  });
}
