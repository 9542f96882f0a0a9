/** The broker contract: one suite, run against every Broker implementation (broker.test.ts). */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Broker } from '../src/broker/broker.js';

export interface BrokerFixture {
  /** A broker of a new node, initialized, recording what it receives. */
  node(): Promise<{ broker: Broker; got: [string, string][] }>;
  destroy(): Promise<void>;
}

const until = async (check: () => boolean, what: string, ms = 3000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

export function brokerContract(name: string, fixture: () => Promise<BrokerFixture>): void {
  describe(`broker contract: ${name}`, () => {
    let fx: BrokerFixture;
    let a: { broker: Broker; got: [string, string][] };
    let b: { broker: Broker; got: [string, string][] };
    before(async () => {
      fx = await fixture();
      a = await fx.node();
      b = await fx.node();
    });
    after(async () => {
      await a.broker.close();
      await b.broker.close();
      await fx.destroy();
    });

    test('a publication reaches every subscribed node, the publisher included, and only them', async () => {
      await a.broker.subscribe('r1');
      await b.broker.subscribe('r1');
      await a.broker.subscribe('only-a');
      await a.broker.publish('r1', 'hello');
      await b.broker.publish('only-a', 'for a');
      await b.broker.publish('nobody', 'lost');
      await until(() => a.got.length >= 2 && b.got.length >= 1, 'deliveries');
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(a.got, [['r1', 'hello'], ['only-a', 'for a']]);
      assert.deepEqual(b.got, [['r1', 'hello']]);
      a.got.length = 0;
      b.got.length = 0;
    });

    test("one node's publications to one room arrive in publish order", async () => {
      await b.broker.subscribe('ordered');
      const n = 500;
      await Promise.all(Array.from({ length: n }, (_, i) => a.broker.publish('ordered', String(i))));
      await until(() => b.got.length >= n, `${n} deliveries`);
      assert.deepEqual(b.got.map(([, p]) => Number(p)), Array.from({ length: n }, (_, i) => i));
      b.got.length = 0;
    });

    test('unsubscribe stops delivery', async () => {
      await b.broker.subscribe('u');
      await b.broker.unsubscribe('u');
      await a.broker.subscribe('u');
      await a.broker.publish('u', 'x');
      await until(() => a.got.length >= 1, 'own delivery');
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(b.got.filter(([room]) => room === 'u').length, 0);
      a.got.length = 0;
    });

    test('payloads are passed through byte for byte', async () => {
      await b.broker.subscribe('bytes');
      const payload = JSON.stringify({ text: 'üñí€ode 🎉 "quotes" \\ \n newline' });
      await a.broker.publish('bytes', payload);
      await until(() => b.got.length >= 1, 'delivery');
      assert.equal(b.got[0]?.[1], payload);
      b.got.length = 0;
    });

    test('healthy once connected', () => {
      assert.equal(a.broker.healthy, true);
    });
  });
}
