import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
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

test('redis presence: refreshed entries outlive the TTL; a node that stops refreshing drops out within it', async () => {
  const prefix = freshPrefix();
  const a = new RedisPresence(REDIS_URL, 400, prefix);
  const b = new RedisPresence(REDIS_URL, 400, prefix);
  try {
    await a.add('r', 'alice', 'a1');
    await a.add('r', 'alice', 'a2');
    await a.add('r', 'bob', 'a3');
    await a.add('s', 'bob', 'a3');
    await b.add('r', 'carol', 'b1');
    assert.equal(await a.remove('r', 'alice', 'a1'), false, 'alice still has a2 here');
    await sleep(1300); // more than three TTLs: only refreshes keep the entries
    assert.deepEqual(await b.list('r'), ['alice', 'bob', 'carol']);
    assert.deepEqual(await b.list('s'), ['bob']);
    assert.equal((await b.add('r', 'alice', 'b2')).first, false, 'alice is still present through a2');
    await a.close(); // stops refreshing, as a crashed node would
    await sleep(700);
    assert.deepEqual(await b.list('r'), ['alice', 'carol'], 'a\'s entries expired; alice stays through b2');
    assert.deepEqual(await b.list('s'), []);
  } finally {
    await Promise.all([a.close(), b.close()]); // closing twice is harmless
    await dropPrefix(prefix);
  }
});
