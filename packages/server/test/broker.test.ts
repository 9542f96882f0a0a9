import { EventEmitter } from 'node:events';
import { MemoryBroker } from '../src/broker/memory.js';
import { RedisBroker } from '../src/broker/redis.js';
import { RedisPresence } from '../src/presence/redis.js';
import { brokerContract } from './broker.contract.js';
import { presenceContract } from './presence.contract.js';
import { dropPrefix, freshPrefix, REDIS_URL } from './redis.js';

brokerContract('memory (shared bus)', async () => {
  const bus = new EventEmitter();
  return {
    node: async () => {
      const got: [string, string][] = [];
      const broker = new MemoryBroker(bus);
      await broker.init((room, payload) => got.push([room, payload]));
      return { broker, got };
    },
    destroy: async () => undefined,
  };
});

brokerContract('redis', async () => {
  const prefix = freshPrefix();
  return {
    node: async () => {
      const got: [string, string][] = [];
      const broker = new RedisBroker(REDIS_URL, prefix);
      await broker.init((room, payload) => got.push([room, payload]));
      return { broker, got };
    },
    destroy: () => dropPrefix(prefix),
  };
});

presenceContract('redis', async () => {
  const prefix = freshPrefix();
  return { open: async () => new RedisPresence(REDIS_URL, 30_000, prefix), destroy: () => dropPrefix(prefix) };
});
