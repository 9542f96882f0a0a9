/**
 * Limits enforced on a live socket: frame size (1009), binary frames (1003), the per-connection
 * rate limit (`rate_limited` errors, then 1008 for a flood), the heartbeat (a client that does
 * not answer pings is dropped) and the bounded outgoing queue (a slow consumer is closed with
 * 4000 while a fast client in the same room receives everything).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CloseCodes } from '@parley/protocol';
import type { Connection } from '../src/connection.js';
import { account, connect, sleep, stalledSocket, startTestServer, TestClient, user, wsUrl, type TestServer } from '@parley/testing/helpers';

/** The server-side Connection of a user (the only one that user has). */
function serverConn(server: TestServer, name: string): Connection | undefined {
  return [...server.hub.connections].find((c) => c.user === name);
}

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

describe('frame limits', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ maxMessageBytes: 1024 });
  });
  after(() => server.stop());

  test('a frame bigger than maxMessageBytes closes the connection with 1009', async () => {
    const { client, name } = await user(server);
    const conn = serverConn(server, name);
    assert.ok(conn, 'the server has the connection');
    // Valid JSON, so the only thing wrong with it is its size.
    client.send(JSON.stringify({ type: 'send_message', payload: { message: 'x'.repeat(2000) } }));
    const closed = await client.waitClose();
    assert.equal(closed.code, CloseCodes.message_too_big);
    await until(() => !server.hub.connections.has(conn), 'the server to drop the connection');
    assert.equal(client.all('new_message').length, 0, 'the oversize message was not delivered');
  });

  test('a frame just under maxMessageBytes is accepted', async () => {
    const { client } = await user(server);
    const message = 'y'.repeat(900);
    client.send({ type: 'send_message', payload: { message }, ref: 'r1' });
    const ack = await client.next('ack');
    assert.equal(ack.ref, 'r1');
    const m = await client.next('new_message', (p) => p.seq === ack.seq && p.room === ack.room);
    assert.equal(m.message, message);
    assert.equal(client.closed, undefined);
    client.close();
  });

  test('a binary frame closes the connection with 1003', async () => {
    const { client, name } = await user(server);
    const conn = serverConn(server, name);
    assert.ok(conn);
    client.ws.send(Buffer.from(JSON.stringify({ type: 'send_message', payload: { message: 'hi' } })), { binary: true });
    const closed = await client.waitClose();
    assert.equal(closed.code, CloseCodes.unsupported_data);
    assert.equal(conn.closeReason, 'binary frames are not supported');
    assert.equal(client.all('new_message').length, 0);
    await until(() => !server.hub.connections.has(conn), 'the server to drop the connection');
  });
});

describe('rate limit', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ rateLimitPerSec: 5, rateLimitBurst: 5 });
  });
  after(() => server.stop());

  test('events past the burst get rate_limited errors; the connection stays open', async () => {
    const { client } = await user(server);
    for (let i = 1; i <= 8; i++) client.send({ type: 'join', payload: { room: `rl-${i}` }, ref: i });
    await client.waitCount('error', 3);
    await client.waitCount('joined', 5); // (connect() consumed the initial `joined general`)
    const errors = client.all('error');
    assert.equal(errors.length, 3);
    for (const e of errors) assert.equal(e.code, 'rate_limited');
    // The burst is taken in order: the first five are served, the last three refused.
    assert.deepEqual(
      errors.map((e) => e.ref),
      [6, 7, 8],
    );
    assert.deepEqual(
      client
        .all('joined')
        .map((j) => j.room)
        .filter((r) => r !== 'general')
        .sort(),
      ['rl-1', 'rl-2', 'rl-3', 'rl-4', 'rl-5'],
    );
    assert.equal(client.closed, undefined, 'the connection is still open');

    // After the bucket refills, an event is served normally.
    await sleep(1100);
    client.send({ type: 'send_message', payload: { message: 'after the pause' }, ref: 'later' });
    const ack = await client.next('ack');
    assert.equal(ack.ref, 'later');
    const m = await client.next('new_message', (p) => p.seq === ack.seq);
    assert.equal(m.message, 'after the pause');
    assert.equal(client.all('error').length, 3, 'no new error');
    assert.equal(client.closed, undefined);
    client.close();
  });

  test('a client that keeps sending far past the limit is closed with 1008', async () => {
    const { client, name } = await user(server);
    const conn = serverConn(server, name);
    assert.ok(conn);
    for (let i = 0; i < 100; i++) client.send({ type: 'join', payload: { room: 'flood' }, ref: i });
    const closed = await client.waitClose();
    assert.equal(closed.code, CloseCodes.policy_violation);
    assert.equal(conn.closeReason, 'rate limit exceeded repeatedly');
    const errors = client.all('error');
    assert.ok(errors.length >= 1, 'some events were refused before the close');
    assert.ok(errors.every((e) => e.code === 'rate_limited'));
    assert.ok(client.all('joined').filter((j) => j.room === 'flood').length <= 5, 'at most the burst was served');
    await until(() => !server.hub.connections.has(conn), 'the server to drop the connection');
  });
});

describe('heartbeat', () => {
  const pingIntervalMs = 200;
  const pongTimeoutMs = 200;
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ pingIntervalMs, pongTimeoutMs });
  });
  after(() => server.stop());

  test('a client that does not answer pings is dropped; one that does stays', async () => {
    const alive = await user(server);
    let alivePings = 0;
    alive.client.ws.on('ping', () => alivePings++);

    const deadAccount = await account(server);
    const started = Date.now();
    // The ping listener is there before the handshake: a ping may come before the welcome.
    const dead = new TestClient(wsUrl(server, deadAccount.otp), { autoPong: false });
    let deadPings = 0;
    dead.ws.on('ping', () => deadPings++);
    await dead.opened;
    await dead.next('welcome');
    const deadConn = serverConn(server, deadAccount.name);
    assert.ok(deadConn);

    const closed = await dead.waitClose(pingIntervalMs + pongTimeoutMs + 2000);
    // The server destroys the socket without a closing handshake (a dead peer would not read it).
    assert.equal(closed.code, 1006);
    assert.ok(deadPings >= 1, 'the server pinged the dead client before dropping it');
    assert.equal(deadConn.closeReason, 'heartbeat timeout');
    await until(() => !server.hub.connections.has(deadConn), 'the hub to forget the dead connection');
    assert.ok(Date.now() - started >= pongTimeoutMs, 'not dropped before a pong could have arrived');

    // The live client stays over several more ping intervals.
    const aliveConn = serverConn(server, alive.name);
    assert.ok(aliveConn);
    const pingsBefore = alivePings;
    await sleep(pingIntervalMs * 5);
    assert.ok(alivePings - pingsBefore >= 3, `the live client kept being pinged (${alivePings - pingsBefore} pings)`);
    assert.equal(alive.client.closed, undefined);
    assert.ok(server.hub.connections.has(aliveConn));
    alive.client.send({ type: 'send_message', payload: { message: 'still here' }, ref: 1 });
    const ack = await alive.client.next('ack');
    assert.equal(ack.ref, 1);
    alive.client.close();
  });
});

describe('a client that answers pings but stops reading', () => {
  test('is closed with 4000 once its frames waited two ping intervals without the kernel taking any', async () => {
    const server = await startTestServer({ pingIntervalMs: 400, pongTimeoutMs: 5000, rateLimitPerSec: 10_000, rateLimitBurst: 10_000, userRateLimitPerSec: 0 });
    try {
      const sender = await user(server);
      const quiet = await account(server);
      const s = await stalledSocket(server.port, `otp=${quiet.otp}`);
      const pongs = setInterval(() => s.pong(), 100);
      try {
        const conn = serverConn(server, quiet.name);
        assert.ok(conn);
        // Fill the kernel's buffers, then a little of the server's queue, far below its bound.
        const text = 'y'.repeat(3900);
        for (let i = 0; i < 5000 && conn.unsentBytes === 0; i += 20) {
          for (let k = i; k < i + 20; k++) sender.client.send({ type: 'send_message', payload: { message: text }, ref: `f${k}` });
          await sender.client.next('ack', (p) => p.ref === `f${i + 19}`);
          sender.client.frames.length = 0;
        }
        assert.ok(conn.unsentBytes > 0 && conn.unsentBytes < 1024 * 1024, `frames wait for the client: ${conn.unsentBytes} B`);
        await until(() => conn.closeReason !== undefined, 'the stalled client to be closed', 5000);
        assert.equal(conn.closeReason, 'slow consumer');
        assert.equal(serverConn(server, sender.name)?.open, true, 'the sender, who reads, is fine');
      } finally {
        clearInterval(pongs);
        s.socket.destroy();
      }
      sender.client.close();
    } finally {
      await server.stop();
    }
  });
});

describe('heartbeat spread', () => {
  test('pings are spread over the interval: every connection gets one per interval, not all at once', async () => {
    const server = await startTestServer({ pingIntervalMs: 1000, pongTimeoutMs: 1000 });
    try {
      const users = await Promise.all(Array.from({ length: 20 }, () => user(server)));
      const pings: number[][] = users.map(() => []);
      users.forEach((u, i) => u.client.ws.on('ping', () => pings[i]?.push(Date.now())));
      await sleep(2100);
      for (const [i, times] of pings.entries()) assert.ok(times.length >= 1 && times.length <= 3, `connection ${i}: one ping per interval (${times.length} in 2.1 s)`);
      const firsts = pings.map((t) => t[0] as number);
      const span = Math.max(...firsts) - Math.min(...firsts);
      assert.ok(span >= 500, `first pings spread over ${span} ms, not sent at once`);
      for (const u of users) u.client.close();
    } finally {
      await server.stop();
    }
  });
});

describe('slow consumer', () => {
  const sendQueueMaxBytes = 16 * 1024;
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ sendQueueMaxBytes, rateLimitPerSec: 100_000, rateLimitBurst: 100_000, userRateLimitPerSec: 0 });
  });
  after(() => server.stop());

  test('a client that stops reading is closed with 4000; a fast client gets every message in order', async () => {
    const room = 'slow-room';
    const sender = await user(server);
    const fast = await user(server);
    const slow = await user(server);
    for (const c of [sender.client, fast.client, slow.client]) {
      c.send({ type: 'join', payload: { room } });
      await c.next('joined', (p) => p.room === room);
    }
    const slowConn = serverConn(server, slow.name);
    assert.ok(slowConn);

    // Stop reading on the slow client: the kernel buffers fill, then the server's queue.
    slow.client.ws.pause();

    const text = 'z'.repeat(3990);
    // Loopback kernel buffers hold a few MB, so send until the server gives up on the slow client
    // (at most maxTotal messages, ~24 MB), then `afterClose` more to show the room goes on without it.
    const maxTotal = 6000;
    const afterClose = 100;
    const chunk = 10;
    let sent = 0;
    // The sender waits for its acks chunk by chunk, so every broadcast batch stays small and the
    // fast client (in this same process) gets to read between batches.
    let slowClosedAt = -1;
    const more = () => (slowClosedAt < 0 ? sent < maxTotal : sent < slowClosedAt + afterClose);
    while (more()) {
      const refs: number[] = [];
      for (let i = 0; i < chunk && more(); i++, sent++) {
        refs.push(sent);
        sender.client.send({ type: 'send_message', payload: { room, message: `${sent}:${text}` }, ref: sent });
      }
      for (const ref of refs) await sender.client.next('ack', (p) => p.ref === ref);
      if (slowClosedAt < 0 && slowConn.closeReason !== undefined) {
        // The server has queued its close frame: resume reading now, before the close grace
        // (CLOSE_GRACE_MS) runs out, so the client can read up to that close frame.
        slowClosedAt = sent;
        slow.client.ws.resume();
      }
      // Keep the sender's own queue of echoes from piling up.
      sender.client.frames.length = 0;
    }
    assert.equal(slowConn.closeReason, 'slow consumer', `the slow client was closed as a slow consumer (after ${slowClosedAt} messages)`);
    assert.equal(fast.client.closed, undefined, 'the fast client is still connected');

    const total = sent;
    // Every message reached the fast client, in seq order, with consecutive seqs.
    const got = (await fast.client.waitCount('new_message', total, 20_000)).map((f) => f.payload as { room: string; seq: number; message: string });
    const msgs = got.filter((m) => m.room === room);
    assert.equal(msgs.length, total);
    for (let i = 0; i < total; i++) {
      assert.equal(msgs[i]?.message.split(':')[0], String(i), `message ${i} in order`);
      if (i > 0) assert.equal(msgs[i]?.seq, (msgs[i - 1]?.seq ?? 0) + 1, 'consecutive seqs');
    }

    // The slow client reads what was buffered, then the server's close frame (4000).
    const closed = await slow.client.waitClose(10_000);
    assert.equal(closed.code, CloseCodes.slow_consumer);
    const slowMsgs = slow.client.all('new_message').filter((m) => m.room === room);
    assert.ok(slowMsgs.length <= slowClosedAt, `the slow client got nothing sent after its close (${slowMsgs.length} of ${total})`);
    for (let i = 0; i < slowMsgs.length; i++) assert.equal(slowMsgs[i]?.message.split(':')[0], String(i), 'what it got is a gap-free prefix');
    await until(() => !server.hub.connections.has(slowConn), 'the hub to forget the slow connection');
    assert.equal(server.hub.roomSize(room), 2);
    fast.client.close();
    sender.client.close();
  });
});
