/** Rooms, messages and error events over real WebSockets. */
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ErrorCodes } from '@parley/protocol';
import { Flusher } from '../src/connection.js';
import { account, connect, sleep, startTestServer, user, type TestServer, chat } from '@parley/testing/helpers';

describe('events', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ maxMessageChars: 100, maxRoomsPerConnection: 3 });
  });
  after(() => server.stop());

  test('a new connection is welcomed and is in room general', async () => {
    const a = await user(server);
    // connect() already consumed welcome + joined(general); check the welcome's content on a second socket.
    const b = await user(server);
    a.client.send({ type: 'send_message', payload: { message: 'hello' } });
    const m = await b.client.next('new_message', (p) => p.from === a.name);
    assert.equal(m.room, 'general');
    a.client.close();
    b.client.close();
  });

  test('send_message reaches everyone in the room, the sender included, with from/seq/sent', async () => {
    const room = `r${Date.now()}`;
    const [a, b, c] = await Promise.all([user(server), user(server), user(server)]);
    let joinedAt = 0;
    for (const u of [a, b, c]) {
      u.client.send({ type: 'change_room', payload: { name: room }, ref: 'cr' });
      const changed = await u.client.next('room_changed');
      assert.equal(changed.name, room);
      assert.ok(changed.seq > joinedAt, 'each join is an event of the room (room_created, then member_joined)');
      joinedAt = changed.seq;
    }
    assert.equal(joinedAt, 3);
    const before = Date.now();
    a.client.send({ type: 'send_message', payload: { message: 'one' } });
    a.client.send({ type: 'send_message', payload: { message: 'two', room } });
    for (const u of [a, b, c]) {
      const first = await u.client.next('new_message');
      const second = await u.client.next('new_message');
      assert.deepEqual([first.message, second.message], ['one', 'two']);
      assert.equal(first.from, a.name);
      assert.equal(first.room, room);
      assert.equal(first.seq, joinedAt + 1);
      assert.equal(second.seq, joinedAt + 2, 'seq grows by one per message in the room');
      assert.match(first.sent, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(Math.abs(Date.parse(first.sent) - before) < 5000);
    }
    for (const u of [a, b, c]) u.client.close();
  });

  test('from is the authenticated user whatever the client writes', async () => {
    const [a, b] = await Promise.all([user(server), user(server)]);
    a.client.send({ type: 'send_message', payload: { message: 'spoof', from: b.name, user: b.name } });
    a.client.send({ type: 'send_message', payload: { message: 'spoof2' }, from: b.name });
    const m1 = await b.client.next('new_message', (p) => p.message === 'spoof');
    const m2 = await b.client.next('new_message', (p) => p.message === 'spoof2');
    assert.equal(m1.from, a.name);
    assert.equal(m2.from, a.name);
    a.client.close();
    b.client.close();
  });

  test('rooms are isolated; join follows several rooms; leave stops them', async () => {
    const x = `x${Date.now()}`;
    const y = `y${Date.now()}`;
    const [a, b, c] = await Promise.all([user(server), user(server), user(server)]);
    a.client.send({ type: 'change_room', payload: { name: x } });
    await a.client.next('room_changed');
    b.client.send({ type: 'change_room', payload: { name: y } });
    await b.client.next('room_changed');
    // c follows both x and y (and general).
    c.client.send({ type: 'join', payload: { room: x }, ref: 1 });
    const jx = await c.client.next('joined', (p) => p.room === x);
    assert.equal(jx.envelopeRef, 1, 'ref is echoed on the reply');
    c.client.send({ type: 'join', payload: { room: y } });
    await c.client.next('joined', (p) => p.room === y);

    a.client.send({ type: 'send_message', payload: { message: 'in x' } });
    b.client.send({ type: 'send_message', payload: { message: 'in y' } });
    const cx = await c.client.next('new_message', (p) => p.room === x);
    const cy = await c.client.next('new_message', (p) => p.room === y);
    assert.equal(cx.message, 'in x');
    assert.equal(cy.message, 'in y');
    await a.client.next('new_message', (p) => p.message === 'in x');
    await b.client.next('new_message', (p) => p.message === 'in y');
    await sleep(100);
    assert.equal(a.client.all('new_message').filter((m) => m.room === y).length, 0, 'a is not in y');
    assert.equal(b.client.all('new_message').filter((m) => m.room === x).length, 0, 'b is not in x');

    // change_room moved a out of general: general traffic does not reach it.
    c.client.send({ type: 'send_message', payload: { message: 'in general', room: 'general' } });
    await c.client.next('new_message', (p) => p.message === 'in general');
    await sleep(100);
    assert.equal(a.client.all('new_message').filter((m) => m.room === 'general').length, 0);

    c.client.send({ type: 'leave', payload: { room: x }, ref: 'lx' });
    const left = await c.client.next('left');
    assert.equal(left.room, x);
    assert.equal(left.envelopeRef, 'lx');
    a.client.send({ type: 'send_message', payload: { message: 'after leave' } });
    await a.client.next('new_message', (p) => p.message === 'after leave');
    await sleep(100);
    assert.equal(c.client.all('new_message').filter((m) => m.message === 'after leave').length, 0);
    for (const u of [a, b, c]) u.client.close();
  });

  test('joining a room answers with its latest seq', async () => {
    const room = `s${Date.now()}`;
    const [a, b] = await Promise.all([user(server), user(server)]);
    a.client.send({ type: 'join', payload: { room } });
    assert.equal((await a.client.next('joined')).seq, 1, 'room_created');
    for (let i = 0; i < 3; i++) a.client.send({ type: 'send_message', payload: { message: `m${i}`, room } });
    await a.client.waitCount('new_message', 3);
    b.client.send({ type: 'join', payload: { room } });
    assert.equal((await b.client.next('joined')).seq, 5, 'three messages and b\'s own member_joined');
    a.client.close();
    b.client.close();
  });

  test('history returns newest first, pages with before', async () => {
    const room = `h${Date.now()}`;
    const a = await user(server);
    a.client.send({ type: 'join', payload: { room } });
    await a.client.next('joined');
    for (let i = 1; i <= 5; i++) a.client.send({ type: 'send_message', payload: { message: `h${i}`, room } });
    await a.client.waitCount('new_message', 5);
    a.client.send({ type: 'history', payload: { room, limit: 2 }, ref: 'h1' });
    const page1 = await a.client.next('history');
    assert.deepEqual(page1.messages.map((m) => m.seq), [6, 5], 'seq 1 is room_created');
    assert.equal(chat(page1.messages)[0]?.from, a.name);
    a.client.send({ type: 'history', payload: { room, before: 5 } });
    const page2 = await a.client.next('history');
    assert.deepEqual(chat(page2.messages).map((m) => m.message), ['h3', 'h2', 'h1']);
    assert.deepEqual(page2.messages.map((m) => ('type' in m ? m.type : m.seq)), [4, 3, 2, 'room_created'], 'the room\'s events come with its messages');
    a.client.close();
  });

  test('every refused event gets an error with its code and the connection stays open', async () => {
    const a = await user(server);
    const c = a.client;
    const cases: [unknown, keyof typeof ErrorCodes][] = [
      ['not json at all', 'bad_json'],
      ['[1,2,3]', 'bad_event'],
      ['42', 'bad_event'],
      [{ payload: {} }, 'bad_event'],
      [{ type: 7, payload: {} }, 'bad_event'],
      [{ type: 'send_message', payload: { message: 'x' }, ref: { nested: true } }, 'bad_event'],
      [{ type: 'explode', payload: {} }, 'unknown_type'],
      [{ type: 'constructor', payload: {} }, 'unknown_type'],
      [{ type: '__proto__', payload: {} }, 'unknown_type'],
      [{ type: 'send_message' }, 'invalid_payload'],
      [{ type: 'send_message', payload: { message: 5 } }, 'invalid_payload'],
      [{ type: 'send_message', payload: { message: '' } }, 'invalid_payload'],
      [{ type: 'join', payload: { room: 'bad room!' } }, 'invalid_room'],
      [{ type: 'join', payload: { room: 'x'.repeat(65) } }, 'invalid_room'],
      [{ type: 'send_message', payload: { message: 'x', room: 'elsewhere' } }, 'forbidden'],
      [{ type: 'leave', payload: { room: 'elsewhere' } }, 'forbidden'],
      [{ type: 'history', payload: { room: 'elsewhere' } }, 'forbidden'],
      [{ type: 'send_message', payload: { message: 'y'.repeat(101) } }, 'message_too_long'],
    ];
    let i = 0;
    for (const [frame, code] of cases) {
      const ref = `e${i++}`;
      const withRef = typeof frame === 'object' && frame !== null && !('ref' in frame) ? { ...frame, ref } : frame;
      c.send(withRef);
      const err = await c.next('error');
      assert.equal(err.code, code, `${JSON.stringify(frame)} → ${err.code}`);
      assert.equal(typeof err.message, 'string');
      if (withRef !== frame && code !== 'bad_event') assert.equal(err.ref, ref, `ref echoed in the error payload for ${code}`);
    }
    // Still open and working.
    c.send({ type: 'send_message', payload: { message: 'still here' }, ref: 'ok' });
    const ack = await c.next('ack');
    assert.equal(ack.ref, 'ok');
    assert.equal(c.closed, undefined);
    c.close();
  });

  test('too_many_rooms past maxRoomsPerConnection', async () => {
    const a = await user(server);
    a.client.send({ type: 'join', payload: { room: 'm1' } });
    a.client.send({ type: 'join', payload: { room: 'm2' } });
    await a.client.waitCount('joined', 2);
    a.client.send({ type: 'join', payload: { room: 'm3' } });
    assert.equal((await a.client.next('error')).code, 'too_many_rooms');
    a.client.close();
  });

  test('several connections of one user each receive the message once', async () => {
    const a = await user(server);
    const { connect, ticket } = await import('@parley/testing/helpers');
    const second = await connect(server, await ticket(server, a.token));
    a.client.send({ type: 'send_message', payload: { message: 'to both tabs' } });
    await a.client.next('new_message', (p) => p.message === 'to both tabs');
    await second.next('new_message', (p) => p.message === 'to both tabs');
    await sleep(50);
    assert.equal(second.all('new_message').filter((m) => m.message === 'to both tabs').length, 0);
    a.client.close();
    second.close();
  });

  test('a client that disconnects is removed from the hub', async () => {
    const a = await user(server);
    const before = server.hub.connections.size;
    a.client.close();
    await a.client.waitClose();
    for (let i = 0; i < 50 && server.hub.connections.size >= before; i++) await sleep(10);
    assert.equal(server.hub.connections.size, before - 1);
  });
});

/** Records the write calls (each one system call) of every socket in this process, until restore(). */
function countWrites(): { writes: Map<Socket, string[]>; restore: () => void } {
  const writes = new Map<Socket, string[]>();
  const proto = Socket.prototype as unknown as Record<'_write' | '_writev', (this: Socket, ...args: unknown[]) => void>;
  const original = { _write: proto._write, _writev: proto._writev };
  proto._write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
    writes.set(this, [...(writes.get(this) ?? []), String(chunk)]);
    return original._write.call(this, chunk, ...rest);
  };
  proto._writev = function (this: Socket, chunks: unknown, ...rest: unknown[]) {
    writes.set(this, [...(writes.get(this) ?? []), (chunks as { chunk: unknown }[]).map((c) => String(c.chunk)).join('')]);
    return original._writev.call(this, chunks, ...rest);
  };
  return { writes, restore: () => Object.assign(proto, original) };
}

describe('broadcast', () => {
  test('the 101 and the first frames leave in one write; so do the replies to one event', async () => {
    const { writes, restore } = countWrites();
    const server = await startTestServer();
    try {
      const a = await user(server); // auto-joins general: welcome, joined, presence
      await a.client.next('presence', (p) => p.room === 'general');
      const [conn] = server.hub.connections;
      const socket = (conn as unknown as { socket: Socket }).socket;
      const first = writes.get(socket)?.[0] ?? '';
      for (const part of ['HTTP/1.1 101', '"type":"welcome"', '"type":"joined"', '"type":"presence"']) assert.ok(first.includes(part), `first write holds ${part}: ${first}`);
      assert.equal(writes.get(socket)?.length, 1);
      a.client.send({ type: 'join', payload: { room: 'one-write' }, ref: 'j' });
      await a.client.next('presence', (p) => p.room === 'one-write');
      const second = writes.get(socket) ?? [];
      assert.equal(second.length, 2, 'one more write for the join');
      assert.ok(second[1]?.includes('"type":"joined"') && second[1].includes('"type":"presence"'), `joined and presence together: ${second[1]}`);
      a.client.close();
    } finally {
      restore();
      await server.stop();
    }
  });

  test('with a write delay, frames from separate turns within the delay leave in one write', async () => {
    const { writes, restore } = countWrites();
    const server = await startTestServer({ writeDelayMs: 200 });
    try {
      const a = await user(server);
      await a.client.next('presence', (p) => p.room === 'general');
      const [conn] = server.hub.connections;
      const socket = (conn as unknown as { socket: Socket }).socket;
      const before = writes.get(socket)?.length ?? 0;
      // Two frames in two separate turns, well within the 200 ms delay.
      conn?.send('error', { code: 'internal', message: 'delayed-one' });
      await new Promise((r) => setImmediate(r));
      conn?.send('error', { code: 'internal', message: 'delayed-two' });
      await a.client.next('error', (p) => p.message === 'delayed-two');
      const after = writes.get(socket) ?? [];
      assert.equal(after.length, before + 1, 'one write for both frames');
      assert.ok(after.at(-1)?.includes('delayed-one') && after.at(-1)?.includes('delayed-two'));
      a.client.close();
    } finally {
      restore();
      await server.stop();
    }
  });

  test('the busy write delay holds frames only while the event loop is busy', async () => {
    const flusher = new Flusher(0, 7);
    try {
      await sleep(200);
      flusher.sample();
      assert.equal(flusher.delay, 0, 'idle: frames leave at the end of the turn');
      const until = Date.now() + 300;
      while (Date.now() < until); // the event loop busy for 300 ms
      flusher.sample();
      assert.equal(flusher.delay, 7, 'busy: frames are held');
      assert.ok(flusher.delayed);
      await sleep(300);
      flusher.sample();
      assert.equal(flusher.delay, 0, 'idle again: frames leave at the end of the turn');
      // A fixed write delay wins over the busy one.
      const fixed = new Flusher(3, 7);
      assert.equal(fixed.delay, 3);
      fixed.close();
    } finally {
      flusher.close();
    }
  });

  test('permessage-deflate is off by default: a client that offers it gets no extension', async () => {
    const server = await startTestServer();
    try {
      const a = await account(server);
      const client = await connect(server, a.otp, { perMessageDeflate: true });
      assert.equal(client.ws.extensions, '', 'no extension negotiated');
      client.close();
    } finally {
      await server.stop();
    }
  });

  test('a message is serialized and framed once: every member is handed the same bytes', async () => {
    const server = await startTestServer();
    try {
      const room = `once${Date.now()}`;
      const users = await Promise.all([user(server), user(server), user(server)]);
      for (const u of users) {
        u.client.send({ type: 'join', payload: { room } });
        await u.client.next('joined', (p) => p.room === room);
      }
      // Record what each server-side connection is handed to write.
      const handed: Buffer[] = [];
      for (const conn of server.hub.connections) {
        const original = conn.sendFrame.bind(conn);
        conn.sendFrame = (frame: Buffer) => {
          if (frame.includes('"broadcast-once"')) handed.push(frame);
          return original(frame);
        };
      }
      users[0]?.client.send({ type: 'send_message', payload: { message: 'broadcast-once', room } });
      for (const u of users) await u.client.next('new_message', (p) => p.message === 'broadcast-once');
      assert.equal(handed.length, 3);
      assert.ok(handed.every((f) => f === handed[0]), 'one Buffer instance for all receivers');
      for (const u of users) u.client.close();
    } finally {
      await server.stop();
    }
  });
});
