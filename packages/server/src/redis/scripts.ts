/**
 * Parley's Lua scripts, typed on ioredis's commander (module augmentation): each is defined on
 * the command connection by its driver (defineCommand) and called like a built-in command, on
 * the client and in pipelines, without a cast.
 */
import type { Result } from 'ioredis';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** ratelimit/redis.ts: INCR with a TTL on first use; the count. */
    parleyRateHit(key: string, ttlMs: number): Result<number, Context>;
    /** throttle/redis.ts: 0 (counted, go ahead) or the ms to wait. */
    parleyThrottleAttempt(key: string, now: number, free: number, windowMs: number, baseMs: number, maxMs: number): Result<number, Context>;
    parleyThrottleRefund(key: string): Result<number, Context>;
    /** presence/redis.ts: [first (1 or 0), the room's users]. */
    parleyPresenceAdd(userKey: string, roomKey: string, now: number, expiry: number, ttlMs: number, conn: string, user: string): Result<[number, string[]], Context>;
    /** presence/redis.ts: 1 when it was the user's last connection in the room. */
    parleyPresenceRemove(userKey: string, roomKey: string, now: number, conn: string, user: string): Result<number, Context>;
    /** presence/redis.ts: [expired users, users put back]; numKeys first, arrays flattened by ioredis. */
    parleyPresenceRefresh(numKeys: number, keys: string[], args: (string | number)[]): Result<[string[], string[]], Context>;
  }
}
