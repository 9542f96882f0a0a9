/** Presence and typing end to end, and the presence contract on the memory driver. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MemoryPresence } from '../src/presence/memory.js';
import { connect, sleep, startTestServer, ticket, user, type TestServer } from '@parley/testing/helpers';
import { presenceContract } from './presence.contract.js';

presenceContract('memory', async () => ({ open: async () => new MemoryPresence(), destroy: async () => undefined }));

describe('presence and typing over sockets', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  test('presence on join, user_joined / user_left once per user however many tabs', async () => {
    const room = `p${Date.now()}`;
    const a = await user(server);
    const b = await user(server);
    a.client.send({ type: 'join', payload: { room } });
    assert.deepEqual((await a.client.next('presence', (p) => p.room === room)).users, [a.name]);
    b.client.send({ type: 'join', payload: { room } });
    const joined = await a.client.next('user_joined', (p) => p.room === room);
    assert.equal(joined.user, b.name);
    assert.deepEqual((await b.client.next('presence', (p) => p.room === room)).users, [a.name, b.name].sort());

    const bTab2 = await connect(server, await ticket(server, b.token));
    bTab2.send({ type: 'join', payload: { room } });
    await bTab2.next('presence', (p) => p.room === room);
    b.client.close();
    await b.client.waitClose();
    await sleep(100);
    const aSaw = (t: 'user_joined' | 'user_left') => a.client.all(t).filter((p) => p.room === room && p.user === b.name).length;
    assert.equal(aSaw('user_joined'), 0, 'the second tab is not a new join');
    assert.equal(aSaw('user_left'), 0, 'closing one of two tabs is not a leave');
    bTab2.send({ type: 'leave', payload: { room } });
    const left = await a.client.next('user_left', (p) => p.room === room);
    assert.equal(left.user, b.name);
    a.client.send({ type: 'join', payload: { room } });
    bTab2.close();
    a.client.close();
  });

  test('a disconnect is a leave for every room of the connection', async () => {
    const room = `d${Date.now()}`;
    const a = await user(server);
    const b = await user(server);
    for (const u of [a, b]) {
      u.client.send({ type: 'join', payload: { room } });
      await u.client.next('presence', (p) => p.room === room);
    }
    b.client.close();
    assert.equal((await a.client.next('user_left', (p) => p.room === room)).user, b.name);
    assert.equal((await a.client.next('user_left', (p) => p.room === 'general' && p.user === b.name)).user, b.name);
    a.client.close();
  });

  test('typing goes to the others in the room, not back to the typist, at most once a second', async () => {
    const room = `t${Date.now()}`;
    const [a, b, c] = [await user(server), await user(server), await user(server)];
    for (const u of [a, b]) {
      u.client.send({ type: 'join', payload: { room } });
      await u.client.next('presence', (p) => p.room === room);
    }
    for (let i = 0; i < 5; i++) a.client.send({ type: 'typing', payload: { room } });
    const t = await b.client.next('typing');
    assert.deepEqual(t, { room, user: a.name });
    await sleep(200);
    assert.equal(b.client.all('typing').length, 0, 'a burst is passed on once');
    assert.equal(a.client.all('typing').length, 0, 'not echoed to the typist');
    assert.equal(c.client.all('typing').length, 0, 'not to other rooms');
    await sleep(900);
    a.client.send({ type: 'typing', payload: { room } });
    await b.client.next('typing');
    a.client.send({ type: 'typing', payload: { room: 'not-joined' } });
    assert.equal((await a.client.next('error')).code, 'forbidden', 'no such room: the one answer');
    a.client.send({ type: 'typing', payload: { room: 'general' } });
    a.client.send({ type: 'leave', payload: { room: 'general' } });
    await a.client.next('left');
    a.client.send({ type: 'typing', payload: { room: 'general' } });
    assert.equal((await a.client.next('error')).code, 'not_in_room', 'a public room not followed: join it');
    for (const u of [a, b, c]) u.client.close();
  });
});
