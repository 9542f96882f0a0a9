/**
 * GET /metrics counts real events: connections opened and closed, messages stored, events
 * refused by each rate limit, a slow consumer closed, the broker lost and back; and the port of
 * its own (metricsPort) serves it while the main port stops doing so.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { OwnRedis, waitFor } from '@parley/testing/cluster';
import { freePort } from '@parley/testing/cli';
import { account, api, stalledSocket, startTestServer, user, type TestServer } from '@parley/testing/helpers';
import { freshPrefix } from '@parley/testing/redis';

/** The exposition text of GET /metrics at `base`. */
async function scrape(base: string): Promise<string> {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  return res.text();
}

/** The value of one sample (`name` with exactly these labels, in prom-client's order), or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const l = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',');
  const key = l === '' ? `${name} ` : `${name}{${l}} `;
  const line = text.split('\n').find((x) => x.startsWith(key));
  return line === undefined ? undefined : Number(line.slice(key.length));
}

const value = async (base: string, name: string, labels?: Record<string, string>): Promise<number | undefined> => sample(await scrape(base), name, labels);

describe('GET /metrics on the main port', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ rateLimitPerSec: 10_000, rateLimitBurst: 10_000, userRateLimitPerSec: 0 });
  });
  after(() => server.stop());

  test('has every Parley metric, Node\'s default metrics and the event-loop lag', async () => {
    const text = await scrape(server.url);
    for (const name of [
      'parley_connections',
      'parley_messages_stored_total',
      'parley_deliveries_total',
      'parley_broker_up',
      'parley_store_up',
      'parley_slow_consumer_closes_total',
      'parley_store_write_seconds_count',
      'nodejs_eventloop_lag_seconds',
      'nodejs_eventloop_lag_p99_seconds',
      'process_cpu_user_seconds_total',
      'nodejs_heap_size_used_bytes',
    ]) {
      assert.ok(sample(text, name) !== undefined, `${name} is exposed`);
    }
    // Counters with labels show once they counted something; their type is declared from the start.
    for (const name of ['parley_store_errors_total', 'parley_gap_fills_total', 'parley_rate_limited_total']) assert.match(text, new RegExp(`^# TYPE ${name} counter$`, 'm'));
    assert.equal(sample(text, 'parley_broker_up'), 1, 'the memory broker is always up');
    assert.equal(sample(text, 'parley_store_up'), 1);
    const head = await fetch(`${server.url}/metrics`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal((await head.text()).length, 0);
    const post = await api(server.url, '/metrics', {});
    assert.equal(post.status, 405);
    assert.equal(post.body.error.code, 'method_not_allowed');
  });

  test('parley_connections counts the open WebSockets', async () => {
    const a = await user(server);
    const b = await user(server);
    assert.equal(await value(server.url, 'parley_connections'), 2);
    a.client.close();
    await waitFor(async () => (await value(server.url, 'parley_connections')) === 1, 'one connection left');
    b.client.close();
    await waitFor(async () => (await value(server.url, 'parley_connections')) === 0, 'no connection left');
  });

  test('parley_messages_stored_total counts stored messages, a retried ref not again; each store call is timed', async () => {
    const storedBefore = (await value(server.url, 'parley_messages_stored_total')) ?? NaN;
    const writesBefore = (await value(server.url, 'parley_store_write_seconds_count')) ?? NaN;
    const a = await user(server);
    const n = 25;
    for (let i = 0; i < n; i++) a.client.send({ type: 'send_message', payload: { message: `counted ${i}` }, ref: `obs-count-${i}` });
    for (let i = 0; i < n; i++) await a.client.next('ack', (p) => p.ref === `obs-count-${i}`);
    assert.equal(await value(server.url, 'parley_messages_stored_total'), storedBefore + n);
    a.client.send({ type: 'send_message', payload: { message: 'counted 0' }, ref: 'obs-count-0' });
    await a.client.next('ack', (p) => p.ref === 'obs-count-0');
    const text = await scrape(server.url);
    assert.equal(sample(text, 'parley_messages_stored_total'), storedBefore + n, 'a duplicate is not stored again');
    assert.ok((sample(text, 'parley_store_write_seconds_count') ?? 0) >= writesBefore + 1, 'store calls are timed');
    a.client.close();
  });
});

describe('parley_rate_limited_total', () => {
  test('{limit="connection"} counts each event the connection bucket refused', async () => {
    const server = await startTestServer({ rateLimitPerSec: 1, rateLimitBurst: 3 });
    try {
      const a = await user(server);
      // Burst 3: of 6 frames sent at once, 3 or more are refused (a flood needs more than 3 refusals).
      for (let i = 0; i < 6; i++) a.client.send({ type: 'typing', payload: { room: 'general' }, ref: `obs-rl-${i}` });
      await a.client.waitCount('error', 3);
      const refused = a.client.all('error').filter((e) => e.code === 'rate_limited').length;
      assert.ok(refused >= 3, `${refused} refused`);
      assert.equal(await value(server.url, 'parley_rate_limited_total', { limit: 'connection' }), refused);
      assert.equal(await value(server.url, 'parley_rate_limited_total', { limit: 'user' }), undefined, 'the per-user limit refused nothing');
      a.client.close();
    } finally {
      await server.stop();
    }
  });

  test('{limit="user"} counts each message past the per-user limit', async () => {
    const server = await startTestServer({ userRateLimitPerSec: 2, rateLimitPerSec: 10_000, rateLimitBurst: 10_000 });
    try {
      const a = await user(server);
      for (let i = 0; i < 10; i++) a.client.send({ type: 'send_message', payload: { message: `burst ${i}` }, ref: `obs-user-${i}` });
      const answered = (i: number) => a.client.frames.some((f) => (f.type === 'ack' || f.type === 'error') && f.payload.ref === `obs-user-${i}`);
      await waitFor(async () => Array.from({ length: 10 }, (_, i) => i).every(answered), 'an answer to each message');
      const refused = a.client.all('error').filter((e) => e.code === 'rate_limited').length;
      assert.ok(refused >= 1, `${refused} of 10 refused by the per-user limit`);
      assert.equal(await value(server.url, 'parley_rate_limited_total', { limit: 'user' }), refused);
      assert.equal(await value(server.url, 'parley_rate_limited_total', { limit: 'connection' }), undefined, 'the connection bucket refused nothing');
      a.client.close();
    } finally {
      await server.stop();
    }
  });
});

describe('parley_slow_consumer_closes_total', () => {
  test('a client that answers pings but stops reading is closed as a slow consumer, and counted once', async () => {
    const server = await startTestServer({ pingIntervalMs: 400, pongTimeoutMs: 5000, rateLimitPerSec: 10_000, rateLimitBurst: 10_000, userRateLimitPerSec: 0 });
    try {
      assert.equal(await value(server.url, 'parley_slow_consumer_closes_total'), 0);
      const sender = await user(server);
      const quiet = await account(server);
      const s = await stalledSocket(server.port, `otp=${quiet.otp}`);
      const pongs = setInterval(() => s.pong(), 100);
      try {
        const conn = [...server.hub.connections].find((c) => c.user === quiet.name);
        assert.ok(conn);
        // Fill the kernel's buffers towards the quiet client, until frames wait in the server.
        const text = 'y'.repeat(3900);
        for (let i = 0; i < 5000 && conn.unsentBytes === 0 && conn.closeReason === undefined; i += 20) {
          for (let k = i; k < i + 20; k++) sender.client.send({ type: 'send_message', payload: { message: text }, ref: `obs-slow-${k}` });
          await sender.client.next('ack', (p) => p.ref === `obs-slow-${i + 19}`);
          sender.client.frames.length = 0;
        }
        await waitFor(async () => conn.closeReason !== undefined, 'the stalled client to be closed', 10_000);
        assert.equal(conn.closeReason, 'slow consumer');
        assert.equal(await value(server.url, 'parley_slow_consumer_closes_total'), 1);
      } finally {
        clearInterval(pongs);
        s.socket.destroy();
      }
      sender.client.close();
    } finally {
      await server.stop();
    }
  });
});

describe('metricsPort', () => {
  test('a port of its own serves GET /metrics only, and the main port no longer does', async () => {
    const metricsPort = await freePort();
    const server = await startTestServer({ metricsPort });
    try {
      assert.equal(server.metricsPort, metricsPort);
      assert.equal(server.config.metricsOnMainPort, false, 'off the main port by default once metricsPort is set');
      const base = `http://127.0.0.1:${metricsPort}`;
      const a = await user(server);
      assert.equal(await value(base, 'parley_connections'), 1);
      const other = await api(base, '/readyz', undefined, { method: 'GET' });
      assert.equal(other.status, 404);
      assert.equal(other.body.error.code, 'not_found');
      const post = await api(base, '/metrics', {});
      assert.equal(post.status, 405);
      assert.equal(post.headers.get('allow'), 'GET, HEAD');
      const main = await api(server.url, '/metrics', undefined, { method: 'GET' });
      assert.equal(main.status, 404);
      assert.equal(main.body.error.code, 'not_found');
      a.client.close();
    } finally {
      await server.stop();
    }
    await assert.rejects(fetch(`http://127.0.0.1:${metricsPort}/metrics`), 'closed with the server');
  });

  test('metricsOnMainPort: true keeps it on the main port as well', async () => {
    const metricsPort = await freePort();
    const server = await startTestServer({ metricsPort, metricsOnMainPort: true });
    try {
      assert.equal(await value(`http://127.0.0.1:${metricsPort}`, 'parley_store_up'), 1);
      assert.equal(await value(server.url, 'parley_store_up'), 1);
    } finally {
      await server.stop();
    }
  });
});

describe('parley_broker_up', () => {
  test('is 0 while the Redis broker is down, and 1 again once it is back', async () => {
    const redis = await OwnRedis.start();
    const server = await startTestServer({ broker: 'redis', redisUrl: redis.url, redisPrefix: freshPrefix() });
    try {
      assert.equal(await value(server.url, 'parley_broker_up'), 1);
      await redis.kill();
      await waitFor(async () => (await value(server.url, 'parley_broker_up')) === 0, 'parley_broker_up 0', 15_000);
      await redis.start();
      await waitFor(async () => (await value(server.url, 'parley_broker_up')) === 1, 'parley_broker_up 1', 15_000);
    } finally {
      await server.stop();
      await redis.stop();
    }
  });
});
