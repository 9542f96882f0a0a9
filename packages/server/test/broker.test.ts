import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { MemoryBroker } from '../src/broker/memory.js';
import { RedisBroker } from '../src/broker/redis.js';
import { RedisPresence } from '../src/presence/redis.js';
import { brokerContract } from './broker.contract.js';
import { presenceContract } from './presence.contract.js';
import { RedisShard } from '../src/redis/index.js';
import { OwnRedis, waitFor } from '@parley/testing/cluster';
import { BackendUnavailableError } from '../src/driver.js';
import { dropPrefix, freshPrefix, REDIS_URL, redisShard, UNREACHABLE_REDIS_URL } from '@parley/testing/redis';

brokerContract('memory (shared bus)', async () => {
  const bus = new EventEmitter();
  return {
    node: async () => {
      const got: [string, string][] = [];
      const broker = new MemoryBroker(bus);
      broker.onMessage = (room, payload) => got.push([room, payload]);
      await broker.init();
      return { broker, got };
    },
    destroy: async () => undefined,
  };
});

brokerContract('redis', async () => {
  const prefix = freshPrefix();
  const shards: RedisShard[] = [];
  return {
    node: async () => {
      const got: [string, string][] = [];
      const shard = redisShard();
      shards.push(shard);
      const broker = new RedisBroker(shard, prefix);
      broker.onMessage = (room, payload) => got.push([room, payload]);
      await broker.init();
      return { broker, got };
    },
    destroy: async () => {
      await Promise.all(shards.map((s) => s.close()));
      await dropPrefix(prefix);
    },
  };
});

/** Presence of a node of its own (its own shard), initialized. */
const presenceNode = async (shards: RedisShard[], ttlMs: number, prefix: string): Promise<RedisPresence> => {
  const shard = redisShard();
  shards.push(shard);
  const p = new RedisPresence(shard, ttlMs, prefix);
  await p.init();
  return p;
};

presenceContract('redis', async () => {
  const prefix = freshPrefix();
  const shards: RedisShard[] = [];
  return {
    open: () => presenceNode(shards, 30_000, prefix),
    destroy: async () => {
      await Promise.all(shards.map((s) => s.close()));
      await dropPrefix(prefix);
    },
  };
});

test('redis presence: a room with more users than one refresh call takes stays present past the TTL', async () => {
  const prefix = freshPrefix();
  const shards: RedisShard[] = [];
  const a = await presenceNode(shards, 1000, prefix);
  const b = await presenceNode(shards, 1000, prefix);
  try {
    const users = Array.from({ length: 1234 }, (_, i) => `u${String(i).padStart(4, '0')}`);
    for (let i = 0; i < users.length; i += 100) await Promise.all(users.slice(i, i + 100).map((u) => a.add('big', u, `c-${u}`)));
    await a.add('big', 'u0600', 'c-u0600-tab2'); // a user with two connections, in the second call
    await a.add('small', 'u0001', 'c-u0001');
    await sleep(3000); // three TTLs: only refreshes keep the entries
    assert.deepEqual(await b.list('big'), users);
    assert.deepEqual(await b.list('small'), ['u0001']);
    assert.equal(await a.remove('big', 'u0600', 'c-u0600'), false, 'u0600 is still present through its second connection');
    assert.equal((await b.add('big', 'u0600', 'c-b')).first, false);
  } finally {
    await Promise.all([a.close(), b.close()]);
    await Promise.all(shards.map((s) => s.close()));
    await dropPrefix(prefix);
  }
});

test('redis presence: refreshed entries outlive the TTL; a node that stops refreshing drops out within it', async () => {
  const prefix = freshPrefix();
  const shards: RedisShard[] = [];
  const a = await presenceNode(shards, 400, prefix);
  const b = await presenceNode(shards, 400, prefix);
  const expired: [string, string[]][] = [];
  b.onExpired = (room, users) => expired.push([room, users]);
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
    assert.deepEqual(expired, [], 'nobody expires while every node refreshes');
    await a.close(); // stops refreshing, as a crashed node would
    await sleep(700);
    assert.deepEqual(await b.list('r'), ['alice', 'carol'], 'a\'s entries expired; alice stays through b2');
    assert.deepEqual(await b.list('s'), []);
    // b has connections in r, none in s: it reports bob's expiry in r, once.
    assert.deepEqual(expired, [['r', ['bob']]]);
    // As if b had been cut off long enough for another node to take carol out: its next
    // refresh puts her back and reports it.
    const returned: [string, string[]][] = [];
    b.onReturned = (room, users) => returned.push([room, users]);
    const raw = new Redis(REDIS_URL);
    try {
      assert.equal(await raw.zrem(`${prefix}presence:r`, 'carol'), 1);
      await sleep(400);
      assert.deepEqual(returned, [['r', ['carol']]]);
      assert.deepEqual(await b.list('r'), ['alice', 'carol']);
    } finally {
      raw.disconnect();
    }
  } finally {
    await Promise.all([a.close(), b.close()]); // closing twice is harmless
    await Promise.all(shards.map((s) => s.close()));
    await dropPrefix(prefix);
  }
});

test('redis presence while Redis is down: calls reject with BackendUnavailableError; failing refreshes are reported once per outage', async () => {
  const shard = redisShard(UNREACHABLE_REDIS_URL);
  const p = new RedisPresence(shard, 300, freshPrefix());
  const reported: Error[] = [];
  p.onBackgroundError = (err) => reported.push(err);
  try {
    await p.init();
    assert.equal(p.healthy, false);
    const unavailable = (err: unknown) => err instanceof BackendUnavailableError && err.code === 'unavailable' && err.concern === 'presence';
    await assert.rejects(p.add('r', 'alice', 'c1'), unavailable);
    await assert.rejects(p.list('r'), unavailable);
    await sleep(700); // several refreshes (every ttl/3), each failing
    assert.equal(reported.length, 1, 'one report for the outage, not one per refresh');
    assert.ok(unavailable(reported[0]));
    await assert.rejects(p.remove('r', 'alice', 'c1'), unavailable);
  } finally {
    await p.close();
    await shard.close();
  }
});

test('redis broker while Redis is down: publish rejects at once with BackendUnavailableError; not healthy', async () => {
  const shard = redisShard(UNREACHABLE_REDIS_URL);
  const broker = new RedisBroker(shard, freshPrefix());
  try {
    await broker.init();
    assert.equal(broker.healthy, false);
    const started = Date.now();
    await assert.rejects(broker.publish('r', 'x'), (err: unknown) => err instanceof BackendUnavailableError && err.concern === 'broker');
    assert.ok(Date.now() - started < 1000);
  } finally {
    await broker.close();
    await shard.close();
  }
});

test('redis broker: a topic subscribed while Redis is down, and every topic held before an outage, hold once it is back (D1); healthy only once they do', async () => {
  const redis = await OwnRedis.start();
  const prefix = freshPrefix();
  const shards = [new RedisShard(redis.url, 3000, 'sub-node'), new RedisShard(redis.url, 3000, 'pub-node')];
  const [subShard, pubShard] = shards as [RedisShard, RedisShard];
  const sub = new RedisBroker(subShard, prefix);
  const pub = new RedisBroker(pubShard, prefix);
  const got: [string, string][] = [];
  sub.onMessage = (topic, payload) => got.push([topic, payload]);
  const health: boolean[] = [];
  sub.onHealth = (h) => health.push(h);
  try {
    await Promise.all([sub.init(), pub.init()]);
    await sub.subscribe('before');
    assert.equal(sub.healthy, true);
    await redis.kill();
    await waitFor(async () => !sub.healthy, 'the outage to show');
    await assert.rejects(sub.subscribe('during'), BackendUnavailableError, 'a subscribe while Redis is down rejects at once');
    await redis.start();
    await waitFor(async () => sub.healthy && pub.healthy, 'both brokers to be back');
    // Healthy means subscribed: no wait between the report and a publication reaching us.
    await pub.publish('before', 'b1');
    await pub.publish('during', 'd1');
    await waitFor(async () => got.length === 2, 'both publications');
    assert.deepEqual(got, [['before', 'b1'], ['during', 'd1']]);
    assert.deepEqual(health.slice(-1), [true]);
    const raw = new Redis(redis.url);
    try {
      const list = await raw.client('LIST');
      assert.match(String(list), /name=parley:sub-node:subscriber/, 'connections are named after their node');
      assert.match(String(list), /name=parley:pub-node:command/);
      assert.equal(Number(((await raw.pubsub('NUMSUB', `${prefix}during`)) as [string, number])[1]), 1);
    } finally {
      raw.disconnect();
    }
    await sub.unsubscribe('during');
    await pub.publish('during', 'd2');
    await pub.publish('before', 'b2');
    await waitFor(async () => got.length === 3, 'the publication still subscribed');
    assert.deepEqual(got[2], ['before', 'b2'], 'unsubscribed topics stay unsubscribed');
  } finally {
    await sub.close();
    await pub.close();
    await Promise.all(shards.map((s) => s.close()));
    await redis.stop();
  }
});
