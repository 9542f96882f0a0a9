/**
 * Throttle counters in Redis, shared by every node: one hash per key (`count`, `until`,
 * `expires`), read and updated by one Lua script, so concurrent attempts on any number of nodes
 * are counted one by one. The hash also expires in Redis (PEXPIRE), so forgotten keys take no room.
 */
import { guarded } from '../driver.js';
import { ShardDriver, type RedisShard } from '../redis/index.js';
import type {} from '../redis/scripts.js';
import type { Throttle, ThrottlePolicy } from './throttle.js';

/**
 * KEYS[1] the key; ARGV now, free, windowMs, baseMs, maxMs. Returns 0 (counted, go ahead) or
 * the ms to wait (not counted). The delay is the one of throttle.ts's delayAfter.
 */
const ATTEMPT = `
local now = tonumber(ARGV[1])
local free = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local base = tonumber(ARGV[4])
local max = tonumber(ARGV[5])
local v = redis.call('HMGET', KEYS[1], 'count', 'until', 'expires')
local count = tonumber(v[1]) or 0
local untilAt = tonumber(v[2]) or 0
if now >= (tonumber(v[3]) or 0) then
  count = 0
  untilAt = 0
end
if now < untilAt then return untilAt - now end
count = count + 1
local hold = 0
if count >= free then hold = math.min(max, base * 2 ^ math.min(count - free, 40)) end
redis.call('HSET', KEYS[1], 'count', count, 'until', now + hold, 'expires', now + hold + window)
redis.call('PEXPIRE', KEYS[1], math.floor(hold + window))
return 0`;

const REFUND = `
local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
if count > 0 then redis.call('HSET', KEYS[1], 'count', count - 1) end
return 0`;

/** A Redis failure (Redis down) becomes a BackendUnavailableError: the route answers 503. */
export class RedisThrottle extends ShardDriver implements Throttle {
  constructor(
    redis: RedisShard,
    private readonly prefix = 'parley:',
  ) {
    super(redis);
    redis.command.defineCommand('parleyThrottleAttempt', { numberOfKeys: 1, lua: ATTEMPT });
    redis.command.defineCommand('parleyThrottleRefund', { numberOfKeys: 1, lua: REFUND });
  }

  private key = (k: string): string => `${this.prefix}throttle:${k}`;

  async attempt(key: string, policy: ThrottlePolicy, now = Date.now()): Promise<number> {
    return guarded('throttle', this.driver, () => this.redis.command.parleyThrottleAttempt(this.key(key), now, policy.free, policy.windowMs, policy.baseMs, policy.maxMs));
  }

  async refund(key: string): Promise<void> {
    await guarded('throttle', this.driver, () => this.redis.command.parleyThrottleRefund(this.key(key)));
  }

  async reset(key: string): Promise<void> {
    await guarded('throttle', this.driver, () => this.redis.command.del(this.key(key)));
  }
}
