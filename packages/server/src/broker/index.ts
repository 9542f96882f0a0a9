import type { Config } from '../config.js';
import type { Broker } from './broker.js';
import { MemoryBroker } from './memory.js';
import { RedisBroker } from './redis.js';

export type { Broker, BrokerHandler } from './broker.js';
export { MemoryBroker } from './memory.js';
export { RedisBroker } from './redis.js';

export function createBroker(config: Pick<Config, 'broker' | 'redisUrl' | 'redisPrefix'>): Broker {
  switch (config.broker) {
    case 'memory':
      return new MemoryBroker();
    case 'redis':
      return new RedisBroker(config.redisUrl as string, config.redisPrefix);
  }
}
