/** The throttle contract against each driver: memory, and Redis (the local server, a key prefix of its own). */
import { MemoryThrottle, RedisThrottle } from '../src/throttle/index.js';
import { dropPrefix, freshPrefix, redisShard } from '@parley/testing/redis';
import { throttleContract } from './throttle.contract.js';

throttleContract('memory', async () => {
  const throttle = new MemoryThrottle();
  await throttle.init();
  return { throttle, destroy: () => throttle.close() };
});

throttleContract('redis', async () => {
  const prefix = freshPrefix();
  const redis = redisShard();
  const throttle = new RedisThrottle(redis, prefix);
  await throttle.init();
  return {
    throttle,
    destroy: async () => {
      await throttle.close();
      await redis.close();
      await dropPrefix(prefix);
    },
  };
});
