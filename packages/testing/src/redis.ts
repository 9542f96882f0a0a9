/** Redis for tests: PARLEY_TEST_REDIS_URL or the local server; a fresh key prefix per use, deleted after. */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisShard } from '@parley/server';

export const REDIS_URL = process.env.PARLEY_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export const freshPrefix = (): string => `parley-test:${process.pid}:${randomBytes(4).toString('hex')}:`;

/** Where no Redis listens: a shard on it starts degraded (after a short wait) and keeps retrying. */
export const UNREACHABLE_REDIS_URL = 'redis://127.0.0.1:1';

/** A node's Redis connections, as a server makes them (close it after the drivers on it). */
export const redisShard = (url = REDIS_URL): RedisShard => new RedisShard(url, url === UNREACHABLE_REDIS_URL ? 100 : 3000);

/** Deletes every key under the prefix. */
export async function dropPrefix(prefix: string, url = REDIS_URL): Promise<void> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await r.connect();
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}
