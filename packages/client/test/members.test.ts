/**
 * Rooms with members through the SDK, against a real server: memberships (client.rooms) from the
 * welcome and live events, room events through the seq gate, moderation requests settling on
 * their replies, reconnects that follow the memberships, and the HTTP helpers.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ParleyClient } from '../src/index.js';
import { account, client, fixture, rejectionCode, waitFor } from './helpers.js';

const { server, track } = fixture();

/** Every seq-bearing item of `room` the app got (messages and room events), in order. */
function stream(c: ParleyClient, room: string): string[] {
  const out: string[] = [];
  const add = (type: string, p: { room: string; seq: number }): void => {
    if (p.room === room) out.push(`${p.seq}:${type}`);
  };
  c.on('new_message', (m) => add('message', m));
  for (const type of ['room_created', 'member_joined', 'member_left', 'banned', 'unbanned', 'role_changed', 'muted', 'unmuted'] as const) c.on(type, (e) => add(type, e));
  return out;
}

describe('@parley/client rooms with members', { timeout: 60_000 }, () => {
  test('create, invite, moderate, kick: memberships and room events, in order, once', async () => {
    const s = await server();
    const [a, b] = [await account(s), await account(s)];
    const A = track(client(s, { token: a.token }));
    const B = track(client(s, { token: b.token }));
    await A.c.connect();
    await B.c.connect();
    const inA = stream(A.c, 'priv');
    const inB = stream(B.c, 'priv');
    const roomsEvents: string[][] = [];
    B.c.on('rooms', (r) => roomsEvents.push(r.rooms.map((m) => m.room)));

    const made = await A.c.createRoom('Priv', { visibility: 'private', title: 'Private' });
    assert.deepEqual(made, { room: 'priv', visibility: 'private', title: 'Private', role: 'owner', seq: 1 });
    assert.equal(A.c.rooms.get('priv')?.role, 'owner');
    assert.equal(await rejectionCode(A.c.createRoom('priv')), 'room_exists');
    assert.equal(await rejectionCode(B.c.join('priv')), 'forbidden', 'a private room is closed to non-members');

    const invited: string[] = [];
    B.c.on('invited', (i) => invited.push(`${i.room}:${i.by}`));
    assert.equal((await A.c.invite('priv', b.name)).seq, 2);
    await waitFor(() => B.c.followed.has('priv') && B.c.lastSeq('priv') === 2, 'B follows priv');
    assert.deepEqual(invited, [`priv:${a.name}`]);
    assert.equal(B.c.rooms.get('priv')?.visibility, 'private');
    assert.ok(roomsEvents.some((r) => r.includes('priv')), 'a rooms event');

    assert.equal(await rejectionCode(B.c.kick('priv', a.name)), 'forbidden', 'a member cannot kick the owner');
    await A.c.setRole('priv', b.name, 'moderator');
    await waitFor(() => B.c.rooms.get('priv')?.role === 'moderator', "B's role follows its role_changed");
    await A.c.setRole('priv', b.name, 'member');
    await A.c.mute('priv', b.name, { durationMs: 60_000 });
    await waitFor(() => B.c.rooms.get('priv')?.muted?.until !== undefined, 'B is muted');
    assert.equal(await rejectionCode(B.c.send('priv', 'hush')), 'muted');
    await A.c.unmute('priv', b.name);
    await waitFor(() => B.c.rooms.get('priv')?.muted === undefined, 'B is unmuted');
    const said = await B.c.send('priv', 'hello');

    const removed: string[] = [];
    B.c.on('removed', (r) => removed.push(`${r.room}:${r.by}:${r.reason ?? ''}:${r.ban}`));
    const kick = await A.c.kick('priv', b.name, 'spam');
    await waitFor(() => removed.length === 1, 'B removed');
    assert.deepEqual(removed, [`priv:${a.name}:spam:false`]);
    assert.equal(B.c.followed.has('priv'), false);
    assert.equal(B.c.rooms.has('priv'), false);
    await waitFor(() => A.c.lastSeq('priv') === kick.seq, 'A saw the kick');

    const expected = ['1:room_created', '2:member_joined', '3:role_changed', '4:role_changed', '5:muted', '6:unmuted', `${said.seq}:message`, `${kick.seq}:member_left`];
    assert.deepEqual(inA, expected, 'A: every item of the stream once, in order');
    assert.deepEqual(inB, expected.slice(2, -1), 'B: from its join up to its removal');
    assert.equal(await rejectionCode(B.c.history('priv')), 'forbidden');
  });

  test('ban refuses the join again; unban lets it in', async () => {
    const s = await server();
    const [a, b] = [await account(s), await account(s)];
    const A = track(client(s, { token: a.token, rooms: ['pub'] }));
    const B = track(client(s, { token: b.token, rooms: ['pub'] }));
    await A.c.connect();
    await B.c.connect();
    const bans: boolean[] = [];
    B.c.on('removed', (r) => bans.push(r.ban));
    await A.c.ban('pub', b.name, 'flood');
    await waitFor(() => bans.length === 1, 'B removed');
    assert.deepEqual(bans, [true]);
    assert.equal(await rejectionCode(B.c.join('pub')), 'banned');
    await A.c.unban('pub', b.name);
    await B.c.join('pub');
    assert.ok(B.c.rooms.has('pub'));
  });

  test('direct rooms: one name for (a, b) and (b, a); the peer follows it at once', async () => {
    const s = await server();
    const [a, b] = [await account(s), await account(s)];
    const A = track(client(s, { token: a.token }));
    const B = track(client(s, { token: b.token }));
    await A.c.connect();
    await B.c.connect();
    const room = await A.c.openDirect(b.name);
    assert.equal(await A.c.openDirect(b.name), room, 'the same on every call');
    assert.equal(await B.c.openDirect(a.name), room, 'the same for either user');
    assert.equal(A.c.rooms.get(room)?.visibility, 'direct');
    assert.equal(A.c.rooms.get(room)?.peer, b.name);
    await waitFor(() => B.c.followed.has(room), 'B follows it');
    const got: string[] = [];
    B.c.on('new_message', (m) => m.room === room && got.push(m.message));
    await A.c.send(room, 'psst');
    await waitFor(() => got.length === 1, 'B got it');
    assert.equal(await rejectionCode(A.c.openDirect(a.name)), 'forbidden', 'not with yourself');
    assert.equal(await rejectionCode(A.c.openDirect('nobody_here')), 'unknown_user');
  });

  test('a reconnect follows the memberships: a room the user was removed from while away is dropped, the others resume', async () => {
    const s = await server();
    const [a, b] = [await account(s), await account(s)];
    const A = track(client(s, { token: a.token, rooms: ['keep', 'lose'] }));
    const B = track(client(s, { token: b.token, rooms: ['keep', 'lose'] }));
    await B.c.connect(); // B owns both
    await A.c.connect();
    A.c.close();
    await B.c.kick('lose', a.name);
    const sent = await B.c.send('keep', 'while away');
    await B.c.createRoom('extra', { visibility: 'private' });
    await B.c.invite('extra', a.name);
    await A.c.connect();
    assert.deepEqual([...A.c.followed].sort(), ['extra', 'general', 'keep']);
    assert.deepEqual([...A.c.rooms.keys()].sort(), ['extra', 'general', 'keep']);
    assert.equal(A.c.lastSeq('keep'), sent.seq, 'resumed: what was missed was replayed');
  });

  test('GET /rooms and /rooms/{room}/members', async () => {
    const s = await server();
    const [a, b] = [await account(s), await account(s)];
    const A = track(client(s, { token: a.token, rooms: ['findme'] }));
    await A.c.connect();
    await A.c.createRoom('hidden', { visibility: 'private', title: 'Secret' });
    const dir = await A.c.listRooms({ q: 'FIND' });
    assert.deepEqual(dir.rooms.map((r) => r.room), ['findme']);
    assert.deepEqual(dir.mine.map((m) => m.room).sort(), ['findme', 'general', 'hidden']);
    const all = await A.c.listRooms();
    assert.equal(all.rooms.some((r) => r.room === 'hidden'), false, 'private rooms are not listed');
    const members = await A.c.members('hidden');
    assert.deepEqual(members.members, [{ user: a.name, role: 'owner' }]);
    const B = track(client(s, { token: b.token }));
    await B.c.connect();
    const err = await B.c.members('hidden').catch((e: unknown) => e);
    assert.equal((err as { code?: string }).code, 'forbidden');
    assert.equal((err as { status?: number }).status, 403);
  });
});
