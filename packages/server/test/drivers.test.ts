/** Drivers chosen in config, built and reported in one place (drivers.ts). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { ConfigError, loadConfig } from '../src/config.js';
import { createDrivers } from '../src/drivers.js';
import { dropPrefix, freshPrefix, REDIS_URL } from '@parley/testing/redis';

const silent = pino({ level: 'silent' });

describe('driver config', () => {
  test('tickets, throttle and rateLimiter default to memory without redisUrl, to redis with it', () => {
    const local = loadConfig();
    assert.deepEqual([local.tickets, local.throttle, local.rateLimiter], ['memory', 'memory', 'memory']);
    const shared = loadConfig({ overrides: { redisUrl: 'redis://127.0.0.1:6379' } });
    assert.deepEqual([shared.tickets, shared.throttle, shared.rateLimiter], ['redis', 'redis', 'redis']);
    assert.equal(shared.broker, 'memory', 'the broker and presence stay memory unless named');
    const mixed = loadConfig({ env: { PARLEY_REDIS_URL: 'redis://127.0.0.1:6379', PARLEY_TICKETS: 'memory' }, overrides: { rateLimiter: 'memory' } });
    assert.deepEqual([mixed.tickets, mixed.throttle, mixed.rateLimiter], ['memory', 'redis', 'memory']);
  });

  for (const key of ['tickets', 'throttle', 'rateLimiter', 'broker', 'presence']) {
    test(`${key}=redis without redisUrl is refused, naming both`, () => {
      assert.throws(() => loadConfig({ overrides: { [key]: 'redis' } }), (err: unknown) => err instanceof ConfigError && err.message.includes(`${key}=redis needs redisUrl`));
    });
  }

  test('an unknown driver is refused', () => {
    assert.throws(() => loadConfig({ overrides: { tickets: 'postgres' } }), /tickets/);
  });
});

describe('createDrivers', () => {
  test('memory drivers: no Redis connection; health reports every driver but the store', async () => {
    const d = createDrivers(loadConfig({ overrides: { dataDir: ':memory:' } }), { store: undefined }, silent);
    assert.equal(d.redis, undefined);
    await d.init();
    try {
      assert.deepEqual(d.health(), { broker: true, presence: true, tickets: true, throttle: true, rateLimiter: true });
      assert.deepEqual([d.tickets.driver, d.throttle.driver, d.rateLimiter.driver], ['memory', 'memory', 'memory']);
    } finally {
      await d.close();
    }
  });

  test('Redis drivers share one shard: one command connection, one subscriber connection', async () => {
    const prefix = freshPrefix();
    const config = loadConfig({ overrides: { dataDir: ':memory:', redisUrl: REDIS_URL, redisPrefix: prefix, broker: 'redis', presence: 'redis' } });
    const d = createDrivers(config, {}, silent);
    try {
      await d.init();
      assert.ok(d.redis);
      assert.deepEqual(d.health(), { broker: true, presence: true, tickets: true, throttle: true, rateLimiter: true });
      assert.deepEqual([d.broker.driver, d.presence.driver, d.tickets.driver, d.throttle.driver, d.rateLimiter.driver], ['redis', 'redis', 'redis', 'redis', 'redis']);
      assert.equal(d.redis.subscriberHealthy, true);
    } finally {
      await d.close();
      await dropPrefix(prefix);
    }
    assert.equal(d.redis?.command.status, 'end', 'closed last, with the drivers');
  });
});
