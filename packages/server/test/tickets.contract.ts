/** The tickets contract (tickets/tickets.ts): one suite, run against every driver (tickets.test.ts). */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { BackendUnavailableError } from '../src/driver.js';
import type { Identity } from '../src/identity/identity.js';
import type { Tickets } from '../src/tickets/index.js';

export interface TicketsFixture {
  /** Whether every node sees the same tickets (a ticket minted on one node redeems on another). */
  shared: boolean;
  /** Tickets of a node, initialized; each call is another node. */
  open(ttlMs: number): Promise<Tickets>;
  /** Tickets whose backend cannot be reached, initialized (drivers that have a backend). */
  down?(): Promise<Tickets>;
  destroy(): Promise<void>;
}

let sessions = 0;
const session = (expiresInMs = 3600_000): Identity => ({ session: `hash-${++sessions}`, user: `user${sessions}`, expiresAt: Date.now() + expiresInMs });

export function ticketsContract(name: string, fixture: () => Promise<TicketsFixture>, withBackend = false): void {
  describe(`tickets contract: ${name}`, () => {
    let fx: TicketsFixture;
    let a: Tickets;
    let b: Tickets;
    before(async () => {
      fx = await fixture();
      a = await fx.open(10_000);
      b = fx.shared ? await fx.open(10_000) : a;
    });
    after(async () => {
      await a.close();
      await b.close();
      await fx.destroy();
    });

    test('a ticket is 256 random bits in base64url and resolves to its user and session, once', async () => {
      const s = session();
      const otp = await a.issue(s);
      assert.match(otp, /^[A-Za-z0-9_-]{43}$/);
      assert.notEqual(await a.issue(s), otp, 'every ticket is new');
      const t = await b.take(otp);
      assert.ok(t);
      assert.equal(t.user, s.user);
      assert.equal(t.session, s.session);
      assert.ok(t.expiresAt > Date.now() && t.expiresAt <= Date.now() + 10_000);
      assert.equal(await a.take(otp), undefined, 'used');
      assert.equal(await b.take(otp), undefined, 'used, on every node');
    });

    test('unknown tickets resolve undefined', async () => {
      assert.equal(await a.take('nope'), undefined);
      assert.equal(await a.take('A'.repeat(43)), undefined);
    });

    test('of 50 concurrent takes of one ticket (on every node), exactly one redeems it', async () => {
      const otp = await a.issue(session());
      const got = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? a : b).take(otp)));
      assert.equal(got.filter((t) => t !== undefined).length, 1);
    });

    test('a ticket expires after its TTL', async () => {
      const short = await fx.open(150);
      try {
        const otp = await short.issue(session());
        const second = await short.issue(session());
        await sleep(300);
        assert.equal(await short.take(otp), undefined, 'expired');
        assert.equal(await short.take(second), undefined, 'expired too');
        const fresh = await short.issue(session());
        assert.ok(await short.take(fresh), 'a fresh one still works');
      } finally {
        await short.close();
      }
    });

    test('a ticket never outlives its session', async () => {
      const s = session(150);
      const otp = await a.issue(s);
      const other = await a.issue(s);
      const t = await a.take(other);
      assert.equal(t?.expiresAt, s.expiresAt, 'it expires with the session, before its own TTL');
      await sleep(300);
      assert.equal(await a.take(otp), undefined);
    });

    test('healthy once initialized', () => {
      assert.equal(a.healthy, true);
      assert.equal(b.healthy, true);
      assert.equal(typeof a.driver, 'string');
    });

    // Only drivers with a backend to lose have this case (memory has none).
    if (withBackend) test('while the backend is down, issue and take reject at once with BackendUnavailableError (unavailable)', async () => {
      const makeDown = fx.down;
      assert.ok(makeDown, 'a driver with a backend gives a fixture whose backend is down');
      const down = await makeDown();
      try {
        assert.equal(down.healthy, false);
        const started = Date.now();
        for (const call of [() => down.issue(session()), () => down.take('A'.repeat(43))]) {
          await assert.rejects(call(), (err: unknown) => err instanceof BackendUnavailableError && err.code === 'unavailable' && err.concern === 'tickets' && err.driver === down.driver);
        }
        assert.ok(Date.now() - started < 1500, 'nothing waits for a reconnect');
      } finally {
        await down.close();
      }
    });
  });
}
