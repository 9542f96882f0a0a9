/** The presence contract: one suite, run against every Presence implementation. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Presence } from '../src/presence/presence.js';

export interface PresenceFixture {
  /** A presence instance of a node; `node` tells nodes apart where the driver is shared. */
  open(node: string): Promise<Presence>;
  destroy(): Promise<void>;
}

export function presenceContract(name: string, fixture: () => Promise<PresenceFixture>): void {
  describe(`presence contract: ${name}`, () => {
    let fx: PresenceFixture;
    let p: Presence;
    before(async () => {
      fx = await fixture();
      p = await fx.open('n1');
    });
    after(async () => {
      await p.close();
      await fx.destroy();
    });

    test('first connection joins, last one leaves; several tabs count once', async () => {
      assert.deepEqual(await p.add('r', 'alice', 'c1'), { first: true, users: ['alice'] });
      assert.equal((await p.add('r', 'alice', 'c2')).first, false, 'second tab');
      assert.deepEqual(await p.add('r', 'bob', 'c3'), { first: true, users: ['alice', 'bob'] }, 'the users after the add, sorted');
      assert.deepEqual(await p.list('r'), ['alice', 'bob']);
      assert.equal(await p.remove('r', 'alice', 'c1'), false, 'one tab left');
      assert.deepEqual(await p.list('r'), ['alice', 'bob']);
      assert.equal(await p.remove('r', 'alice', 'c2'), true, 'last tab');
      assert.deepEqual(await p.list('r'), ['bob']);
      assert.equal((await p.add('r', 'aaron', 'c4')).first, true);
      assert.deepEqual(await p.list('r'), ['aaron', 'bob'], 'a user who joins after a list is in the next one, sorted');
      assert.equal(await p.remove('r', 'aaron', 'c4'), true);
      assert.equal(await p.remove('r', 'alice', 'c2'), false, 'removing twice is harmless');
      assert.equal(await p.remove('r', 'bob', 'c3'), true);
      assert.deepEqual(await p.list('r'), []);
    });

    test('rooms are separate', async () => {
      await p.add('x', 'alice', 'c1');
      await p.add('y', 'bob', 'c2');
      assert.deepEqual(await p.list('x'), ['alice']);
      assert.deepEqual(await p.list('y'), ['bob']);
      assert.deepEqual(await p.list('z'), []);
      await p.remove('x', 'alice', 'c1');
      await p.remove('y', 'bob', 'c2');
    });
  });
}
