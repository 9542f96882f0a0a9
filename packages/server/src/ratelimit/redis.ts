/**
 * Rate-limit windows in Redis, shared by every node: one counter per key and window, counted
 * and given its TTL by one script (INCR, PEXPIRE on the first hit), so concurrent hits on any
 * number of nodes are counted one by one.
 */
import { BackendUnavailableError, OutageReporter } from '../driver.js';
import { ShardDriver, type RedisShard } from '../redis/index.js';
import type {} from '../redis/scripts.js';
import type { RateLimiter } from './ratelimit.js';

const HIT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

export class RedisRateLimit extends ShardDriver implements RateLimiter {
  private readonly outage = new OutageReporter(() => this.onBackgroundError);

  constructor(
    redis: RedisShard,
    private readonly prefix = 'parley:',
  ) {
    super(redis);
    redis.command.defineCommand('parleyRateHit', { numberOfKeys: 1, lua: HIT });
  }

  /** Fails open: while Redis is down, only the per-connection limit applies (the node keeps serving). */
  async hit(key: string, limit: number, windowMs = 1000): Promise<boolean> {
    const window = Math.floor(Date.now() / windowMs);
    try {
      const n = await this.redis.command.parleyRateHit(`${this.prefix}rate:${windowMs}:${key}:${window}`, 2 * windowMs);
      this.outage.succeeded();
      return n <= limit;
    } catch (err) {
      this.outage.failed(new BackendUnavailableError('rateLimiter', this.driver, err));
      return true;
    }
  }
}
