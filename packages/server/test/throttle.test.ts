/** The throttle contract against each driver: memory, and Redis (the local server, a key prefix of its own). */
import { Redis } from 'ioredis';
import { MemoryThrottle, RedisThrottle } from '../src/throttle/index.js';
import { dropPrefix, freshPrefix, REDIS_URL } from '@parley/testing/redis';
import { throttleContract } from './throttle.contract.js';

throttleContract('memory', async () => {
  const throttle = new MemoryThrottle();
  return { throttle, destroy: () => throttle.close() };
});

throttleContract('redis', async () => {
  const prefix = freshPrefix();
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const throttle = new RedisThrottle(redis, prefix);
  return {
    throttle,
    destroy: async () => {
      await throttle.close();
      redis.disconnect();
      await dropPrefix(prefix);
    },
  };
});
