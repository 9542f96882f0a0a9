import type { Config } from '../config.js';
import { MemoryPresence } from './memory.js';
import { RedisPresence } from './redis.js';
import type { Presence } from './presence.js';

export type { Presence } from './presence.js';
export { MemoryPresence } from './memory.js';
export { RedisPresence } from './redis.js';

export function createPresence(config: Pick<Config, 'presence' | 'redisUrl' | 'presenceTtlMs' | 'redisPrefix'>): Presence {
  switch (config.presence) {
    case 'memory':
      return new MemoryPresence();
    case 'redis':
      return new RedisPresence(config.redisUrl as string, config.presenceTtlMs, config.redisPrefix);
  }
}
