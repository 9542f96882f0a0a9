/**
 * The rate limiter contract (ratelimit/ratelimit.ts): one suite, run against every driver
 * (ratelimit.test.ts), the driver alone and in a server (userRateLimitPerSec over a user's
 * connections).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ConfigKey } from '../src/config.js';
import { BackendUnavailableError } from '../src/driver.js';
import type { RateLimiter } from '../src/ratelimit/index.js';
import { connect, sleep, startTestServer, ticket, user } from '@parley/testing/helpers';

export interface RateLimiterFixture {
  /** Whether every node counts into the same windows. */
  shared: boolean;
  /** The rate limiter of a node, initialized; each call is another node. */
  open(): Promise<RateLimiter>;
  /** A rate limiter whose backend cannot be reached, initialized (drivers that have a backend). */
  down?(): Promise<RateLimiter>;
  /** The config of a test server using this driver. */
  server: Partial<Record<ConfigKey, unknown>>;
  destroy(): Promise<void>;
}

/** Waits, when the current window of `windowMs` ends within `margin` ms, for the next one. */
const freshWindow = async (windowMs: number, margin = 250): Promise<void> => {
  const left = windowMs - (Date.now() % windowMs);
  if (left < margin) await sleep(left + 10);
};

export function rateLimiterContract(name: string, fixture: () => Promise<RateLimiterFixture>, withBackend = false): void {
  describe(`rate limiter contract: ${name}`, () => {
    let fx: RateLimiterFixture;
    let a: RateLimiter;
    let b: RateLimiter;
    let n = 0;
    const key = () => `k${++n}:${Date.now()}`;
    before(async () => {
      fx = await fixture();
      a = await fx.open();
      b = fx.shared ? await fx.open() : a;
    });
    after(async () => {
      await a.close();
      await b.close();
      await fx.destroy();
    });

    test('`limit` hits of a key go ahead in a window, the next are refused', async () => {
      const k = key();
      await freshWindow(60_000);
      const got = [];
      for (let i = 0; i < 5; i++) got.push(await (i % 2 === 0 ? a : b).hit(k, 3, 60_000));
      assert.deepEqual(got, [true, true, true, false, false]);
    });

    test('100 hits at once (on every node): exactly `limit` go ahead', async () => {
      const k = key();
      await freshWindow(60_000, 1000);
      const got = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? a : b).hit(k, 10, 60_000)));
      assert.equal(got.filter((ok) => ok).length, 10);
    });

    test('keys, and window lengths of one key, are independent', async () => {
      const [k, other] = [key(), key()];
      await freshWindow(60_000);
      assert.equal(await a.hit(k, 1, 60_000), true);
      assert.equal(await a.hit(k, 1, 60_000), false);
      assert.equal(await a.hit(other, 1, 60_000), true, 'another key');
      await freshWindow(1000);
      assert.equal(await a.hit(k, 1, 1000), true, 'another window length');
      assert.equal(await a.hit(k, 1), false, 'the default window is one second');
    });

    test('windows are aligned to the epoch; the next window starts afresh', async () => {
      const k = key();
      const windowMs = 400;
      await sleep(windowMs - (Date.now() % windowMs) + 20); // just after a boundary
      assert.deepEqual([await a.hit(k, 2, windowMs), await b.hit(k, 2, windowMs), await a.hit(k, 2, windowMs)], [true, true, false]);
      await sleep(windowMs - (Date.now() % windowMs) + 20);
      assert.equal(await b.hit(k, 2, windowMs), true, 'a new window');
    });

    test('a limit of 0 refuses every hit', async () => {
      assert.equal(await a.hit(key(), 0, 60_000), false);
    });

    test('healthy once initialized', () => {
      assert.equal(a.healthy, true);
      assert.equal(typeof a.driver, 'string');
    });

    // Only drivers with a backend to lose have this case (memory has none).
    if (withBackend) test('while the backend is down, hits fail open (resolve true, at once) and the outage is reported once', async () => {
      const makeDown = fx.down;
      assert.ok(makeDown, 'a driver with a backend gives a fixture whose backend is down');
      const down = await makeDown();
      const reported: Error[] = [];
      down.onBackgroundError = (err) => reported.push(err);
      try {
        assert.equal(down.healthy, false);
        const started = Date.now();
        for (let i = 0; i < 5; i++) assert.equal(await down.hit(key(), 1, 60_000), true);
        assert.ok(Date.now() - started < 1500, 'nothing waits for a reconnect');
        assert.equal(reported.length, 1, 'once per outage, not once per hit');
        assert.ok(reported[0] instanceof BackendUnavailableError && reported[0].code === 'unavailable' && reported[0].concern === 'rateLimiter');
      } finally {
        await down.close();
      }
    });

    // Moved from userlimit.test.ts (assertions unchanged), now run against every driver.
    test('userRateLimitPerSec applies across a user’s connections', async () => {
      const s = await startTestServer({ userRateLimitPerSec: 3, ...fx.server });
      try {
        const a = await user(s);
        const tab2 = await connect(s, await ticket(s, a.token));
        await sleep(1000 - (Date.now() % 1000) + 30); // one one-second window for all ten
        for (let i = 0; i < 5; i++) {
          a.client.send({ type: 'send_message', payload: { message: `a${i}` }, ref: `a${i}` });
          tab2.send({ type: 'send_message', payload: { message: `b${i}` }, ref: `b${i}` });
        }
        await sleep(300);
        const acked = a.client.all('ack').length + tab2.all('ack').length;
        const refused = [...a.client.all('error'), ...tab2.all('error')].filter((e) => e.code === 'rate_limited');
        assert.equal(acked, 3, 'three for the user in this second, not three per connection');
        assert.equal(refused.length, 7);
        assert.match(refused[0]?.message ?? '', /per second/);
        // A retry of a stored message is acked with its seq even while the user is over the limit.
        const storedAck = a.client.all('ack')[0] ?? tab2.all('ack')[0];
        assert.ok(storedAck);
        const owner = a.client.all('ack').length > 0 ? a.client : tab2;
        await sleep(1000 - (Date.now() % 1000) + 30);
        for (let i = 0; i < 3; i++) owner.send({ type: 'send_message', payload: { message: 'filler' } });
        owner.send({ type: 'send_message', payload: { message: 'retry' }, ref: storedAck.ref });
        const again = await owner.next('ack', (p) => p.ref === storedAck.ref && p !== storedAck);
        assert.equal(again.seq, storedAck.seq);
        a.client.close();
        tab2.close();
      } finally {
        await s.stop();
      }
    });
  });
}
