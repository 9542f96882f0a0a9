/**
 * The store contract: one suite, run against every Store implementation (store.test.ts).
 * A driver is correct when it passes all of it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { StoreError, type Store } from '../src/store/store.js';

export interface StoreFixture {
  /** A fresh, initialized store on an empty database. */
  open(): Promise<Store>;
  /** A second store on the same database (another process / node). */
  reopen(): Promise<Store>;
  /** Drops the database. */
  destroy(): Promise<void>;
}

const msg = (room: string, i: number, from = 'alice') => ({ room, from, message: `m${i}`, sent: new Date(1_700_000_000_000 + i).toISOString() });

export function storeContract(name: string, fixture: () => Promise<StoreFixture>): void {
  describe(`store contract: ${name}`, () => {
    let fx: StoreFixture;
    let store: Store;
    before(async () => {
      fx = await fixture();
      store = await fx.open();
    });
    after(async () => {
      await store.close();
      await fx.destroy();
    });

    test('users: create, get (case-insensitive), list, conflict, delete', async () => {
      await store.createUser('Alice', 'hash-a');
      await store.createUser('bob', 'hash-b');
      const got = await store.getUser('alice');
      assert.equal(got?.name, 'Alice');
      assert.equal(got?.passwordHash, 'hash-a');
      assert.ok(Math.abs((got?.createdAt ?? 0) - Date.now()) < 60_000);
      await assert.rejects(store.createUser('ALICE', 'x'), (err: unknown) => err instanceof StoreError && err.code === 'conflict');
      assert.deepEqual((await store.listUsers()).map((u) => u.name), ['Alice', 'bob']);
      assert.equal(await store.deleteUser('bob'), true);
      assert.equal(await store.deleteUser('bob'), false);
      assert.equal(await store.getUser('bob'), undefined);
    });

    test('sessions: create, get until expiry, delete, sweep; deleting the user drops them', async () => {
      await store.createUser('carol', 'h');
      const now = Date.now();
      await store.createSession({ tokenHash: 't1', user: 'carol', expiresAt: now + 60_000 });
      await store.createSession({ tokenHash: 't2', user: 'carol', expiresAt: now + 1 });
      assert.equal((await store.getSession('t1', now))?.user, 'carol');
      assert.equal(await store.getSession('t2', now + 10), undefined, 'expired sessions are not returned');
      assert.equal(await store.deleteExpiredSessions(now + 10), 1);
      assert.equal(await store.deleteSession('t1'), true);
      assert.equal(await store.getSession('t1', now), undefined);
      await store.createSession({ tokenHash: 't3', user: 'carol', expiresAt: now + 60_000 });
      await store.deleteUser('carol');
      assert.equal(await store.getSession('t3', now), undefined);
    });

    test('appendMessages assigns per-room seqs 1, 2, 3… in batch order', async () => {
      const out = await store.appendMessages([msg('a', 1), msg('b', 2), msg('a', 3)]);
      assert.deepEqual(out.map((m) => [m.room, m.seq, m.message]), [['a', 1, 'm1'], ['b', 1, 'm2'], ['a', 2, 'm3']]);
      assert.equal(out[0]?.from, 'alice');
      assert.equal(out[0]?.sent, msg('a', 1).sent);
      assert.equal(await store.lastSeq('a'), 2);
      assert.equal(await store.lastSeq('b'), 1);
      assert.equal(await store.lastSeq('never'), 0);
    });

    test('seqs stay unique and gap-free under concurrent writers on one database', async () => {
      const other = await fx.reopen();
      try {
        const writes: Promise<unknown>[] = [];
        for (let i = 0; i < 40; i++) {
          writes.push(store.appendMessages([msg('busy', i, 'w1'), msg('busy', i, 'w1')]));
          writes.push(other.appendMessages([msg('busy', i, 'w2')]));
        }
        await Promise.all(writes);
        const all = await store.history('busy', { limit: 100 });
        const more = await store.history('busy', { before: all.at(-1)?.seq, limit: 100 });
        const seqs = [...all, ...more].map((m) => m.seq).sort((x, y) => x - y);
        assert.deepEqual(seqs, Array.from({ length: 120 }, (_, i) => i + 1));
        // Each writer's own messages keep their order.
        const w2 = [...all, ...more].filter((m) => m.from === 'w2').sort((x, y) => x.seq - y.seq).map((m) => m.message);
        assert.deepEqual(w2, Array.from({ length: 40 }, (_, i) => `m${i}`));
      } finally {
        await other.close();
      }
    });

    test('seqs continue after the store is reopened', async () => {
      await store.appendMessages([msg('persist', 1), msg('persist', 2)]);
      await store.close();
      store = await fx.reopen();
      const [m] = await store.appendMessages([msg('persist', 3)]);
      assert.equal(m?.seq, 3);
    });

    test('history pages newest first with before and limit', async () => {
      await store.appendMessages(Array.from({ length: 7 }, (_, i) => msg('hist', i + 1)));
      assert.deepEqual((await store.history('hist', { limit: 3 })).map((m) => m.seq), [7, 6, 5]);
      assert.deepEqual((await store.history('hist', { before: 5, limit: 3 })).map((m) => m.seq), [4, 3, 2]);
      assert.deepEqual((await store.history('hist', { before: 2, limit: 3 })).map((m) => m.seq), [1]);
      assert.deepEqual(await store.history('hist', { before: 1, limit: 3 }), []);
      assert.deepEqual(await store.history('nothing', { limit: 3 }), []);
      const [latest] = await store.history('hist', { limit: 1 });
      assert.deepEqual(latest, { room: 'hist', seq: 7, from: 'alice', message: 'm7', sent: msg('hist', 7).sent });
    });

    test('text round-trips exactly', async () => {
      const text = 'emoji 🎉, quotes \' " \\, <b>html</b>, NUL-free unicode ∑ and newlines\nline2';
      const [m] = await store.appendMessages([{ room: 'txt', from: 'alice', message: text, sent: new Date().toISOString() }]);
      const [h] = await store.history('txt', { limit: 1 });
      assert.equal(h?.message, text);
      assert.equal(h?.seq, m?.seq);
    });
  });
}
