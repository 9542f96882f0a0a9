/** The throttle contract (throttle/throttle.ts): one suite, run against every driver (throttle.test.ts). */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { delayAfter, type Throttle, type ThrottlePolicy } from '../src/throttle/index.js';

export interface ThrottleFixture {
  throttle: Throttle;
  destroy(): Promise<void>;
}

const policy: ThrottlePolicy = { free: 5, windowMs: 60_000, baseMs: 1000, maxMs: 8000 };
/** A clock the test moves by hand: delays are asserted exactly, without waiting for them. */
const T0 = 1_900_000_000_000;

export function throttleContract(name: string, fixture: () => Promise<ThrottleFixture>): void {
  describe(`throttle contract: ${name}`, () => {
    let fx: ThrottleFixture;
    let t: Throttle;
    let n = 0;
    const key = () => `k${++n}`;
    before(async () => {
      fx = await fixture();
      t = fx.throttle;
    });
    after(() => fx.destroy());

    test('100 attempts at once: exactly `free` go ahead, the rest are told how long to wait', async () => {
      const k = key();
      const waits = await Promise.all(Array.from({ length: 100 }, () => t.attempt(k, policy, T0)));
      assert.equal(waits.filter((w) => w === 0).length, policy.free);
      assert.ok(waits.filter((w) => w > 0).every((w) => w === policy.baseMs), 'each refused attempt waits the first delay');
    });

    test('the delay doubles with every further attempt, up to maxMs; a refused attempt does not lengthen it', async () => {
      const k = key();
      let now = T0;
      for (let i = 0; i < policy.free; i++) assert.equal(await t.attempt(k, policy, now), 0);
      const expected = [1000, 2000, 4000, 8000, 8000];
      for (const [i, delay] of expected.entries()) {
        assert.equal(await t.attempt(k, policy, now), delay, `refused right away, told to wait ${delay} (step ${i})`);
        assert.equal(await t.attempt(k, policy, now + delay - 1), 1, 'still refused 1 ms before; the wait did not grow');
        now += delay;
        assert.equal(await t.attempt(k, policy, now), 0, `allowed once ${delay} ms passed`);
      }
      assert.deepEqual(
        Array.from({ length: 6 }, (_, i) => delayAfter(policy.free + i, policy)),
        [1000, 2000, 4000, 8000, 8000, 8000],
      );
    });

    test('keys are independent', async () => {
      const a = key();
      const b = key();
      for (let i = 0; i < policy.free; i++) await t.attempt(a, policy, T0);
      assert.ok((await t.attempt(a, policy, T0)) > 0);
      assert.equal(await t.attempt(b, policy, T0), 0);
    });

    test('reset forgets a key; refund gives back one attempt', async () => {
      const k = key();
      for (let i = 0; i < policy.free; i++) await t.attempt(k, policy, T0);
      await t.reset(k);
      for (let i = 0; i < policy.free; i++) assert.equal(await t.attempt(k, policy, T0), 0, 'a fresh allowance after reset');
      const r = key();
      for (let i = 0; i < policy.free - 1; i++) await t.attempt(r, policy, T0);
      await t.refund(r);
      assert.equal(await t.attempt(r, policy, T0), 0);
      assert.equal(await t.attempt(r, policy, T0), 0, 'the refunded attempt is free again');
      assert.ok((await t.attempt(r, policy, T0)) > 0);
      await t.refund(key()); // refunding an unknown key is harmless
    });

    test('a key is forgotten windowMs after its delay ends', async () => {
      const k = key();
      for (let i = 0; i < policy.free; i++) await t.attempt(k, policy, T0);
      const end = T0 + policy.baseMs;
      assert.ok((await t.attempt(k, policy, end + policy.windowMs - 1)) === 0, 'allowed after the delay');
      const later = end + policy.windowMs - 1 + 2 * policy.baseMs + policy.windowMs;
      for (let i = 0; i < policy.free; i++) assert.equal(await t.attempt(k, policy, later), 0, `forgotten: free again (${i})`);
    });
  });
}
