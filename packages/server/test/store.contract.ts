/**
 * The store contract: one suite, run against every Store implementation (store.test.ts).
 * A driver is correct when it passes all of it.
 */
import { chat } from '@parley/testing/helpers';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type ChatMessage, isRoomEvent } from '@parley/protocol';
import type { MembershipOp } from '../src/store/membership.js';
import { type Appended, type NewMessage, StoreError, type Store } from '../src/store/store.js';

export interface StoreFixture {
  /** A fresh, initialized store on an empty database. */
  open(): Promise<Store>;
  /** A second store on the same database (another process / node). */
  reopen(): Promise<Store>;
  /** Drops the database. */
  destroy(): Promise<void>;
  /** Marks the database as migrated only up to `version`, so that the next open runs the later migrations again. */
  forgetMigrationsAfter(version: number): Promise<void>;
}

/** Recent times, so the age-based retention test can tell its old messages apart. */
const BASE = Date.now();
const msg = (room: string, i: number, from = 'alice', ref?: string): NewMessage => ({ room, from, message: `m${i}`, sent: new Date(BASE + i).toISOString(), ref });
/** The stored messages of a batch result (throws on a duplicate). */
const stored = (out: Appended[]): ChatMessage[] =>
  out.map((a) => {
    assert.equal(a.duplicate, false);
    return a.message as ChatMessage;
  });

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

    test('removal: the account becomes a tombstone, its name reserved (any case), its sessions gone, the removal recorded once', async () => {
      const since = Date.now();
      await store.createUser('Zed', 'hash-z');
      await store.createSession({ tokenHash: 'tz', user: 'Zed', expiresAt: since + 60_000 });
      assert.equal(await store.nameTaken('zED'), true);
      assert.equal(await store.nameTaken('nobody'), false);
      assert.equal(await store.deleteUser('zed'), true, 'removed by any spelling');
      assert.equal(await store.getUser('Zed'), undefined);
      assert.ok(!(await store.listUsers()).some((u) => u.name === 'Zed'));
      assert.equal(await store.getSession('tz', since), undefined, 'its sessions are gone');
      assert.equal(await store.nameTaken('zed'), true, 'the name stays taken');
      await assert.rejects(store.createUser('ZED', 'hash-2'), (err: unknown) => err instanceof StoreError && err.code === 'conflict');
      assert.equal(await store.deleteUser('Zed'), false, 'removing it again does nothing');
      const removals = (await store.userRemovalsSince(since)).filter((r) => r.user === 'Zed');
      assert.equal(removals.length, 1);
      assert.ok((removals[0] as { at: number }).at >= since && (removals[0] as { at: number }).at <= Date.now());
      assert.deepEqual(
        (await store.userRemovalsSince(Date.now() + 60_000)).filter((r) => r.user === 'Zed'),
        [],
        'only removals at or after the given time',
      );
    });

    test('migration 3: room names that differ only by case become one lower-case room, messages renumbered in sent order', async () => {
      // Rooms as an older version could store them (the store takes any name it is given).
      const at = (i: number) => new Date(BASE + 10_000 + i).toISOString();
      const put = (room: string, i: number, ref?: string) => ({ room, from: 'mig', message: `${room}-${i}`, sent: at(i), ref });
      await store.appendMessages([put('Design', 1, 'd1'), put('design', 2), put('Design', 3), put('DESIGN', 4, 'd4'), put('Ops', 5, 'o5'), put('Ops', 6), put('lower', 7)]);
      await store.close();
      await fx.forgetMigrationsAfter(2);
      store = await fx.reopen();
      assert.deepEqual(
        chat(await store.messagesAfter('design', 0, 10)).map((m) => [m.seq, m.message]),
        [
          [1, 'Design-1'],
          [2, 'design-2'],
          [3, 'Design-3'],
          [4, 'DESIGN-4'],
        ],
      );
      assert.equal(await store.lastSeq('design'), 4);
      assert.equal(await store.lastSeq('Design'), 0, 'the old spellings are gone');
      assert.deepEqual(chat(await store.messagesAfter('ops', 0, 10)).map((m) => [m.seq, m.message]), [
        [1, 'Ops-5'],
        [2, 'Ops-6'],
      ]);
      assert.equal(await store.lastSeq('lower'), 1);
      assert.deepEqual(await store.findRef('mig', 'd4'), { room: 'design', seq: 4 }, 'dedupe entries follow their messages');
      assert.deepEqual(await store.findRef('mig', 'o5'), { room: 'ops', seq: 1 });
      const [next] = stored(await store.appendMessages([put('design', 8)]));
      assert.equal(next?.seq, 5, 'the merged room goes on from its last seq');
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
      const out = stored(await store.appendMessages([msg('a', 1), msg('b', 2), msg('a', 3)]));
      assert.deepEqual(out.map((m) => [m.room, m.seq, m.message]), [['a', 1, 'm1'], ['b', 1, 'm2'], ['a', 2, 'm3']]);
      assert.equal(out[0]?.from, 'alice');
      assert.equal(out[0]?.sent, msg('a', 1).sent);
      assert.equal(await store.lastSeq('a'), 2);
      assert.equal(await store.lastSeq('b'), 1);
      assert.equal(await store.lastSeq('never'), 0);
    });

    test('lastSeqs answers the latest seq of many rooms in one call, leaving out rooms without messages', async () => {
      await store.appendMessages([msg('ls-a', 1), msg('ls-b', 2), msg('ls-a', 3), msg('ls-a', 4)]);
      const seqs = await store.lastSeqs(['ls-a', 'ls-b', 'ls-never', "ls-'quote", 'ls-a']);
      assert.deepEqual([...seqs].sort(), [['ls-a', 3], ['ls-b', 1]]);
      assert.equal((await store.lastSeqs([])).size, 0);
      const many = Array.from({ length: 5000 }, (_, i) => `ls-many-${i}`);
      assert.deepEqual([...(await store.lastSeqs([...many, 'ls-b']))], [['ls-b', 1]]);
    });

    test('seqs stay unique and gap-free under concurrent writers on one database', async () => {
      const other = await fx.reopen();
      try {
        // Two writers, each sending its batches one after another (as the MessageWriter does),
        // racing each other on one database.
        const run = async (s: Store, batch: (i: number) => NewMessage[]) => {
          for (let i = 0; i < 40; i++) await s.appendMessages(batch(i));
        };
        await Promise.all([run(store, (i) => [msg('busy', i, 'w1'), msg('busy', i, 'w1')]), run(other, (i) => [msg('busy', i, 'w2')])]);
        const all = await store.history('busy', { limit: 100 });
        const more = await store.history('busy', { before: all.at(-1)?.seq, limit: 100 });
        const seqs = [...all, ...more].map((m) => m.seq).sort((x, y) => x - y);
        assert.deepEqual(seqs, Array.from({ length: 120 }, (_, i) => i + 1));
        // Each writer's own messages keep their order.
        const w2 = chat([...all, ...more]).filter((m) => m.from === 'w2').sort((x, y) => x.seq - y.seq).map((m) => m.message);
        assert.deepEqual(w2, Array.from({ length: 40 }, (_, i) => `m${i}`));
      } finally {
        await other.close();
      }
    });

    test('seqs continue after the store is reopened', async () => {
      await store.appendMessages([msg('persist', 1), msg('persist', 2)]);
      await store.close();
      store = await fx.reopen();
      const [m] = stored(await store.appendMessages([msg('persist', 3)]));
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
      const [m] = stored(await store.appendMessages([{ room: 'txt', from: 'alice', message: text, sent: new Date().toISOString() }]));
      const [h] = chat(await store.history('txt', { limit: 1 }));
      assert.equal(h?.message, text);
      assert.equal(h?.seq, m?.seq);
    });

    test('a retried ref is stored once and answers with the original seq', async () => {
      const first = await store.appendMessages([msg('dd', 1, 'alice', 'r1'), msg('dd', 2, 'bob', 'r1')]);
      assert.deepEqual(first.map((a) => [a.duplicate, a.message.seq]), [[false, 1], [false, 2]], 'same ref, other user: not a duplicate');
      const again = await store.appendMessages([msg('dd', 3, 'alice', 'r1'), msg('dd', 4, 'alice', 'r2'), msg('dd', 5, 'alice', 'r2')]);
      assert.deepEqual(again.map((a) => [a.duplicate, a.message.room, a.message.seq]), [[true, 'dd', 1], [false, 'dd', 3], [true, 'dd', 3]]);
      assert.equal(await store.lastSeq('dd'), 3, 'duplicates take no seq');
      assert.deepEqual(await store.findRef('alice', 'r2'), { room: 'dd', seq: 3 });
      assert.equal(await store.findRef('alice', 'never'), undefined);
      assert.deepEqual(chat(await store.history('dd', { limit: 10 })).map((m) => m.message), ['m4', 'm2', 'm1']);
      // Across processes too.
      const other = await fx.reopen();
      try {
        const [dup] = await other.appendMessages([msg('elsewhere', 6, 'alice', 'r2')]);
        assert.deepEqual([dup?.duplicate, dup?.message.room, dup?.message.seq], [true, 'dd', 3]);
      } finally {
        await other.close();
      }
    });

    test('concurrent retries of one ref from two processes store it once', async () => {
      const other = await fx.reopen();
      try {
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? store : other).appendMessages([msg('race', i, 'alice', 'same-ref'), msg('race', i, 'bob')])),
        );
        const fresh = results.map((r) => r[0]).filter((a) => a?.duplicate === false);
        assert.equal(fresh.length, 1, 'exactly one stored');
        const seqs = new Set(results.map((r) => r[0]?.message.seq));
        assert.equal(seqs.size, 1, 'every retry answers the same seq');
        assert.equal(await store.lastSeq('race'), 11);
      } finally {
        await other.close();
      }
    });

    test('messagesAfter returns the gap oldest first', async () => {
      await store.appendMessages(Array.from({ length: 6 }, (_, i) => msg('after', i + 1)));
      assert.deepEqual((await store.messagesAfter('after', 2, 10)).map((m) => m.seq), [3, 4, 5, 6]);
      assert.deepEqual((await store.messagesAfter('after', 2, 2)).map((m) => m.seq), [3, 4]);
      assert.deepEqual(await store.messagesAfter('after', 6, 10), []);
    });

    test('prune: by age, by count per room, old dedupe keys; in chunks', async () => {
      const now = Date.now();
      const old = new Date(now - 10 * 86_400_000).toISOString();
      const fresh = new Date(now).toISOString();
      await store.appendMessages([
        { room: 'ret-age', from: 'a', message: 'old1', sent: old },
        { room: 'ret-age', from: 'a', message: 'old2', sent: old },
        { room: 'ret-age', from: 'a', message: 'new', sent: fresh },
      ]);
      await store.appendMessages(Array.from({ length: 12 }, (_, i) => ({ room: 'ret-count', from: 'a', message: `c${i}`, sent: fresh })));
      // Age only, one row per call: the caller loops.
      assert.equal(await store.prune({ olderThan: now - 86_400_000, dedupeOlderThan: 0, limit: 1 }), 1);
      assert.equal(await store.prune({ olderThan: now - 86_400_000, dedupeOlderThan: 0, limit: 1 }), 1);
      assert.equal(await store.prune({ olderThan: now - 86_400_000, dedupeOlderThan: 0, limit: 1 }), 0);
      assert.deepEqual(chat(await store.history('ret-age', { limit: 10 })).map((m) => m.message), ['new']);
      assert.equal(await store.lastSeq('ret-age'), 3, 'seq never goes back');
      // Count: keep the newest 5 of ret-count.
      let n = 0;
      while ((n = await store.prune({ maxPerRoom: 5, dedupeOlderThan: 0, limit: 3 })) > 0) assert.ok(n <= 3);
      const left = await store.history('ret-count', { limit: 100 });
      assert.deepEqual(left.map((m) => m.seq), [12, 11, 10, 9, 8]);
      assert.deepEqual((await store.messagesAfter('ret-count', 0, 10)).map((m) => m.seq), [8, 9, 10, 11, 12]);
      // Dedupe keys past the window are forgotten: the same ref is a new message again.
      await store.appendMessages([msg('ret-dd', 1, 'alice', 'old-ref')]);
      await store.prune({ dedupeOlderThan: Date.now() + 1000, limit: 100 });
      const [again] = await store.appendMessages([msg('ret-dd', 2, 'alice', 'old-ref')]);
      assert.equal(again?.duplicate, false);
      assert.equal(again?.message.seq, 2);
    });

    test('ping answers while open', async () => {
      await store.ping();
    });

    // -----------------------------------------------------------------------------------------
    // Rooms with members (store/membership.ts)

    /** Applies an op that must succeed; its events' types. */
    const ok = async (op: MembershipOp): Promise<string[]> => {
      const out = await store.applyMembership(op);
      assert.ok(out.ok, `${op.type} ${op.room}: ${out.ok ? '' : `${out.code} ${out.message}`}`);
      return out.events.map((e) => e.type);
    };
    /** Applies an op that must be refused with `code`. */
    const refused = async (op: MembershipOp, code: string): Promise<void> => {
      const out = await store.applyMembership(op);
      assert.equal(out.ok ? 'ok' : out.code, code, `${op.type} by ${'by' in op ? op.by : op.user}`);
    };
    const roleOf = async (room: string, user: string) => (await store.roomsAccess(user, [room])).get(room)?.member?.role;

    test('migration 5: rooms written before it become public, their past senders members, their history kept', async () => {
      await store.appendMessages([msg('m5-old', 1, 'Ann'), msg('m5-old', 2, 'bob'), msg('m5-old', 3, 'ann'), msg('m5-other', 4, 'bob')]);
      await store.close();
      await fx.forgetMigrationsAfter(4);
      store = await fx.reopen();
      const access = await store.roomsAccess('ANN', ['m5-old', 'm5-other']);
      assert.deepEqual(
        [access.get('m5-old')?.visibility, access.get('m5-old')?.member?.role, access.get('m5-old')?.member?.user, access.get('m5-old')?.lastSeq],
        ['public', 'member', 'Ann', 3],
      );
      assert.equal(access.get('m5-other')?.member, undefined, 'ann never sent there');
      assert.deepEqual((await store.roomMembers('m5-old', { limit: 10 })).map((m) => m.user), ['Ann', 'bob']);
      assert.deepEqual(chat(await store.messagesAfter('m5-old', 0, 10)).map((m) => [m.seq, m.from, m.message]), [
        [1, 'Ann', 'm1'],
        [2, 'bob', 'm2'],
        [3, 'ann', 'm3'],
      ]);
      assert.deepEqual((await store.publicRooms('m5-', { limit: 10 })).map((r) => [r.room, r.members]), [
        ['m5-old', 2],
        ['m5-other', 1],
      ]);
    });

    test('rooms: create and join; events take the room\'s seqs, messages interleave; refusals change nothing', async () => {
      assert.deepEqual(await ok({ type: 'create', room: 'm-pub', user: 'Owen', visibility: 'public', title: 'Pub' }), ['room_created']);
      await refused({ type: 'create', room: 'm-pub', user: 'x', visibility: 'private', title: '' }, 'room_exists');
      const [m] = stored(await store.appendMessages([msg('m-pub', 1, 'Owen')]));
      assert.equal(m?.seq, 2);
      assert.deepEqual(await ok({ type: 'join', room: 'm-pub', user: 'pat', create: false }), ['member_joined']);
      assert.deepEqual(await ok({ type: 'join', room: 'M-PUB'.toLowerCase(), user: 'PAT', create: false }), [], 'a member joining again changes nothing');
      const items = await store.messagesAfter('m-pub', 0, 10);
      assert.deepEqual(items.map((i) => [i.seq, isRoomEvent(i) ? i.type : i.message]), [[1, 'room_created'], [2, 'm1'], [3, 'member_joined']]);
      const joined = items[2];
      assert.ok(joined !== undefined && isRoomEvent(joined) && joined.type === 'member_joined' && joined.user === 'pat' && joined.role === 'member');
      assert.equal(await store.lastSeq('m-pub'), 3);
      assert.deepEqual((await store.history('m-pub', { limit: 2 })).map((i) => i.seq), [3, 2]);
      // Private: only by invitation; the refusal is the same as for a room that does not exist.
      await ok({ type: 'create', room: 'm-priv', user: 'Owen', visibility: 'private', title: '' });
      await refused({ type: 'join', room: 'm-priv', user: 'pat', create: true }, 'forbidden');
      await refused({ type: 'join', room: 'm-none', user: 'pat', create: false }, 'forbidden');
      assert.equal(await store.lastSeq('m-none'), 0, 'a refused join made nothing');
      assert.deepEqual(await ok({ type: 'join', room: 'm-new', user: 'pat', create: true }), ['room_created']);
      assert.equal(await roleOf('m-new', 'PAT'), 'owner', 'who makes a room by joining it owns it');
      assert.deepEqual(await ok({ type: 'join', room: 'm-servers', user: 'pat', create: true, unowned: true }), ['room_created']);
      assert.equal(await roleOf('m-servers', 'pat'), 'member', 'a room the server makes (general) is owned by nobody');
      const [made] = (await store.history('m-servers', { limit: 1 })).filter(isRoomEvent);
      assert.ok(made?.type === 'room_created' && made.by === '(operator)');
    });

    test('rooms: roles — moderators act below their rank, owners set roles, the last owner stays', async () => {
      const room = 'm-roles';
      await ok({ type: 'create', room, user: 'own', visibility: 'private', title: 'T' });
      for (const u of ['mod', 'ann', 'bob']) assert.deepEqual(await ok({ type: 'invite', room, by: 'own', user: u }), ['member_joined']);
      await refused({ type: 'invite', room, by: 'ann', user: 'zed' }, 'forbidden');
      await refused({ type: 'invite', room, by: 'stranger', user: 'zed' }, 'forbidden');
      await refused({ type: 'set_role', room, by: 'ann', user: 'mod', role: 'moderator' }, 'forbidden');
      assert.deepEqual(await ok({ type: 'set_role', room, by: 'own', user: 'mod', role: 'moderator' }), ['role_changed']);
      await refused({ type: 'set_role', room, by: 'mod', user: 'ann', role: 'moderator' }, 'forbidden');
      await refused({ type: 'kick', room, by: 'mod', user: 'own' }, 'forbidden');
      await refused({ type: 'ban', room, by: 'mod', user: 'own' }, 'forbidden');
      await refused({ type: 'mute', room, by: 'mod', user: 'own', until: Date.now() + 60_000 }, 'forbidden');
      await refused({ type: 'kick', room, by: 'ann', user: 'bob' }, 'forbidden');
      await refused({ type: 'leave', room, user: 'own' }, 'forbidden');
      await refused({ type: 'set_role', room, by: 'own', user: 'own', role: 'member' }, 'forbidden');
      assert.deepEqual(await ok({ type: 'kick', room, by: 'mod', user: 'BOB', reason: 'spam' }), ['member_left']);
      assert.equal(await roleOf(room, 'bob'), undefined);
      const [left] = (await store.history(room, { limit: 1 })).filter(isRoomEvent);
      assert.ok(left?.type === 'member_left' && left.by === 'mod' && left.reason === 'spam' && left.user === 'bob');
      // Handing over: a second owner, then the first may step down and leave.
      await ok({ type: 'set_role', room, by: 'own', user: 'ann', role: 'owner' });
      await refused({ type: 'kick', room, by: 'own', user: 'ann' }, 'forbidden');
      await ok({ type: 'set_role', room, by: 'own', user: 'own', role: 'member' });
      await ok({ type: 'leave', room, user: 'own' });
      assert.equal(await roleOf(room, 'ann'), 'owner');
    });

    test('rooms: ban keeps out until unban; mute has a time; removed accounts leave their rooms', async () => {
      const room = 'm-ban';
      await ok({ type: 'create', room, user: 'own', visibility: 'public', title: '' });
      await ok({ type: 'join', room, user: 'troll', create: false });
      assert.deepEqual(await ok({ type: 'ban', room, by: 'own', user: 'troll', reason: 'no' }), ['banned']);
      await refused({ type: 'join', room, user: 'Troll', create: true }, 'banned');
      assert.deepEqual(await ok({ type: 'ban', room, by: 'own', user: 'lurker' }), ['banned'], 'a non-member can be banned');
      await refused({ type: 'join', room, user: 'lurker', create: false }, 'banned');
      const access = (await store.roomsAccess('troll', [room, 'm-nowhere'])).get(room);
      assert.equal(access?.banned, true);
      assert.equal(access?.member, undefined);
      assert.deepEqual(await ok({ type: 'unban', room, by: 'own', user: 'troll' }), ['unbanned']);
      assert.deepEqual(await ok({ type: 'unban', room, by: 'own', user: 'troll' }), [], 'unban of nobody banned changes nothing');
      await ok({ type: 'join', room, user: 'troll', create: false });
      const until = Date.now() + 60_000;
      assert.deepEqual(await ok({ type: 'mute', room, by: 'own', user: 'troll', until }), ['muted']);
      assert.equal((await store.roomsAccess('troll', [room])).get(room)?.member?.mutedUntil, until);
      assert.deepEqual(await ok({ type: 'unmute', room, by: 'own', user: 'troll' }), ['unmuted']);
      assert.equal((await store.roomsAccess('troll', [room])).get(room)?.member?.mutedUntil, null);
      // The operator's grant lifts a ban.
      await ok({ type: 'ban', room, by: 'own', user: 'exile' });
      assert.deepEqual(await ok({ type: 'grant', room, user: 'exile', role: 'moderator' }), ['unbanned', 'member_joined']);
      const exile = (await store.roomsAccess('exile', [room])).get(room);
      assert.deepEqual([exile?.banned, exile?.member?.role], [false, 'moderator']);
      await store.createUser('gone', 'h');
      await ok({ type: 'join', room, user: 'gone', create: false });
      await store.deleteUser('gone');
      assert.equal(await roleOf(room, 'gone'), undefined);
    });

    test('rooms: direct rooms have their two members and no moderation', async () => {
      const room = 'dm.contract';
      assert.deepEqual(await ok({ type: 'direct', room, user: 'Dee', peer: 'Eve' }), ['room_created']);
      assert.deepEqual(await ok({ type: 'direct', room, user: 'eve', peer: 'dee' }), [], 'the same room, found again');
      await refused({ type: 'join', room, user: 'mallory', create: true }, 'forbidden');
      await refused({ type: 'invite', room, by: 'dee', user: 'mallory' }, 'forbidden');
      await refused({ type: 'kick', room, by: 'dee', user: 'eve' }, 'forbidden');
      await ok({ type: 'leave', room, user: 'eve' });
      assert.deepEqual(await ok({ type: 'direct', room, user: 'dee', peer: 'Eve' }), ['member_joined'], 'opening it again brings the other back');
      const [mine] = (await store.membershipsOf('DEE', 100)).filter((m) => m.room === room);
      assert.equal(mine?.visibility, 'direct');
      assert.equal(mine?.peer, 'Eve');
    });

    test('rooms: memberships, members and the public directory, paged', async () => {
      for (const r of ['m-dir-a', 'm-dir-b', 'm-dir-c']) await ok({ type: 'create', room: r, user: 'lister', visibility: 'public', title: `Title ${r.slice(-1)}` });
      await ok({ type: 'create', room: 'm-dir-hidden', user: 'lister', visibility: 'private', title: 'secret' });
      const mine = await store.membershipsOf('lister', 100);
      assert.deepEqual(mine.map((m) => m.room), ['m-dir-a', 'm-dir-b', 'm-dir-c', 'm-dir-hidden'], 'oldest first');
      assert.deepEqual((await store.membershipsOf('lister', 2)).length, 2);
      const first = await store.publicRooms('m-dir', { limit: 2 });
      assert.deepEqual(first.map((r) => r.room), ['m-dir-a', 'm-dir-b']);
      assert.deepEqual(first[0], { room: 'm-dir-a', title: 'Title a', members: 1 });
      assert.deepEqual((await store.publicRooms('m-dir', { after: 'm-dir-b', limit: 2 })).map((r) => r.room), ['m-dir-c']);
      assert.deepEqual((await store.publicRooms('TITLE B', { limit: 10 })).map((r) => r.room), ['m-dir-b'], 'titles are searched, any case');
      assert.deepEqual(await store.publicRooms('secret', { limit: 10 }), [], 'private rooms are never listed');
      assert.deepEqual(await store.publicRooms('m\\_dir%', { limit: 10 }), [], 'LIKE wildcards are literal');
      for (const u of ['zoe', 'Adam', 'mia']) await ok({ type: 'join', room: 'm-dir-a', user: u, create: false });
      const page1 = await store.roomMembers('m-dir-a', { limit: 2 });
      assert.deepEqual(page1.map((m) => m.user), ['Adam', 'lister']);
      assert.deepEqual((await store.roomMembers('m-dir-a', { after: 'lister', limit: 10 })).map((m) => m.user), ['mia', 'zoe']);
    });
  });
}
