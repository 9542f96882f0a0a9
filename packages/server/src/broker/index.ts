import type { Config } from '../config.js';
import type { RedisShard } from '../redis/index.js';
import type { Broker } from './broker.js';
import { MemoryBroker } from './memory.js';
import { RedisBroker } from './redis.js';
import { chooseDriver } from '../driver.js';

export type { Broker, BrokerHandler } from './broker.js';
export { MemoryBroker } from './memory.js';
export { RedisBroker } from './redis.js';

/** The broker the config names (`broker`), not yet initialized; `redis()` is the node's shard. */
export function createBroker(config: Pick<Config, 'broker' | 'redisPrefix'>, redis: () => RedisShard): Broker {
  return chooseDriver(config.broker, {
    memory: (): Broker => new MemoryBroker(),
    redis: (): Broker => new RedisBroker(redis(), config.redisPrefix),
  });
}
