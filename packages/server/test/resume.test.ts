/**
 * Durable history end to end: acks, idempotent retries, resume without gaps or duplicates
 * (also while traffic goes on, and across a server restart), retention, and a store outage.
 * Runs on SQLite and on Postgres.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { type ChatMessage, isRoomEventType } from '@parley/protocol';
import type { ConfigKey } from '../src/config.js';
import { account, api, connect, sleep, startTestServer, storeDrivers, TestClient, ticket, wsUrl, type Account, type TestServer, chat } from '@parley/testing/helpers';
import { dropSchema, freshSchema, PG_URL } from '@parley/testing/pg';

const FAST = { rateLimitPerSec: 100_000, rateLimitBurst: 100_000, userRateLimitPerSec: 0 };

/** Opens a socket for resuming (no auto-join) and waits for its welcome. */
async function resumeSocket(server: { url: string }, otp: string): Promise<TestClient> {
  const c = new TestClient(wsUrl(server, otp) + '&resume=1');
  await c.opened;
  const welcome = await c.next('welcome');
  assert.equal(welcome.room, null, 'a resume=1 socket follows nothing until it resumes');
  return c;
}

/** Sends `n` messages from `c` to `room` and waits for their acks; returns the acked seqs. */
async function sendMany(c: TestClient, room: string, n: number, tag: string): Promise<number[]> {
  for (let i = 0; i < n; i++) c.send({ type: 'send_message', payload: { message: `${tag}-${i}`, room }, ref: `${tag}-${i}` });
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) seqs.push((await c.next('ack', (p) => p.ref === `${tag}-${i}`, 20_000)).seq);
  return seqs;
}

/** Every new_message of `room` received by `c`, in arrival order. */
const received = (c: TestClient, room: string): ChatMessage[] => c.all('new_message').filter((m) => m.room === room);

/** Every item of `room`'s stream received by `c` (messages and room events: the joins), in arrival order. */
const stream = (c: TestClient, room: string): { seq: number }[] =>
  c.frames.flatMap((f) => (f.type === 'new_message' || isRoomEventType(f.type)) && 'seq' in f.payload && 'room' in f.payload && f.payload.room === room ? [{ seq: f.payload.seq }] : []);

const assertContiguous = (msgs: { seq: number }[], from: number, to: number, what: string) => {
  assert.deepEqual(
    msgs.map((m) => m.seq),
    Array.from({ length: to - from + 1 }, (_, i) => from + i),
    `${what}: seqs ${from}..${to} exactly once, in order`,
  );
};

for (const driver of storeDrivers()) {
  describe(`history and resume (${driver.name})`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    after(async () => {
      for (const c of cleanups.reverse()) await c();
    });
    const server = async (extra: Partial<Record<ConfigKey, unknown>> = {}) => {
      const { o, cleanup } = await driver.overrides();
      const s = await startTestServer({ ...FAST, ...o, ...extra });
      cleanups.push(async () => {
        await s.close();
        await cleanup();
      });
      return { s, o };
    };

    test('a send with ref is acked once stored; a retried ref is acked again and not stored or broadcast twice', async () => {
      const { s } = await server();
      const a = await account(s);
      const b = await account(s);
      const ca = await connect(s, a.otp);
      const cb = await connect(s, b.otp);
      ca.send({ type: 'send_message', payload: { message: 'once' }, ref: 'k1' });
      const ack1 = await ca.next('ack');
      assert.equal(ack1.ref, 'k1');
      assert.equal(ack1.room, 'general');
      assert.equal(ack1.envelopeRef, 'k1');
      // Retry on the same socket, then from a new socket (as after a reconnect).
      ca.send({ type: 'send_message', payload: { message: 'once' }, ref: 'k1' });
      const ack2 = await ca.next('ack');
      ca.close();
      const ca2 = await connect(s, await ticket(s, a.token));
      ca2.send({ type: 'send_message', payload: { message: 'once' }, ref: 'k1' });
      const ack3 = await ca2.next('ack');
      assert.equal(ack2.seq, ack1.seq);
      assert.equal(ack3.seq, ack1.seq);
      // A different ref is a different message; the same ref from another user too.
      cb.send({ type: 'send_message', payload: { message: 'bob' }, ref: 'k1' });
      const ackB = await cb.next('ack');
      assert.equal(ackB.seq, ack1.seq + 1);
      await cb.next('new_message', (m) => m.message === 'bob');
      assert.equal(received(cb, 'general').filter((m) => m.message === 'once').length, 1, 'broadcast once');
      ca2.send({ type: 'history', payload: { room: 'general' } });
      const h = await ca2.next('history');
      assert.deepEqual(chat(h.messages).map((m) => m.message), ['bob', 'once'], 'stored once');
      ca2.close();
      cb.close();
    });

    test('history pages newest first, at most 100 a page', async () => {
      const { s } = await server();
      const a = await account(s);
      const c = await connect(s, a.otp);
      const top = (await sendMany(c, 'general', 130, 'h')).at(-1) ?? 0;
      assert.equal(top, 131, 'general began with room_created');
      c.send({ type: 'history', payload: { room: 'general', limit: 100 } });
      const p1 = await c.next('history');
      assert.equal(p1.messages.length, 100);
      assert.equal(p1.messages[0]?.seq, 131);
      c.send({ type: 'history', payload: { room: 'general', before: p1.messages.at(-1)?.seq, limit: 100 } });
      const p2 = await c.next('history');
      assert.deepEqual(p2.messages.map((m) => m.seq), Array.from({ length: 31 }, (_, i) => 31 - i));
      assert.equal(chat(p2.messages).length, 30);
      c.send({ type: 'history', payload: { room: 'general', limit: 101 } });
      assert.equal((await c.next('error')).code, 'invalid_payload');
      c.close();
    });

    test('resume after a disconnect: exactly the 200 missed messages, in order, no duplicates', async () => {
      const { s } = await server();
      const [a, b] = [await account(s), await account(s)];
      const ca = await connect(s, a.otp);
      ca.send({ type: 'join', payload: { room: 'side' } });
      await ca.next('joined');
      const cb = await connect(s, b.otp);
      cb.send({ type: 'join', payload: { room: 'side' } });
      const side0 = (await cb.next('joined')).seq; // room_created, b's member_joined
      await ca.next('member_joined', (p) => p.room === 'side' && p.seq === side0);
      await sendMany(cb, 'general', 3, 'before');
      await ca.waitCount('new_message', 3);
      const lastGeneral = received(ca, 'general').at(-1)?.seq ?? 0;
      ca.close();
      await ca.waitClose();

      await sendMany(cb, 'general', 120, 'gap-g');
      await sendMany(cb, 'side', 80, 'gap-s');

      const back = await resumeSocket(s, await ticket(s, a.token));
      back.send({ type: 'resume', payload: { rooms: { general: lastGeneral, side: side0 } }, ref: 'r' });
      const rg = await back.next('resumed', (p) => p.room === 'general', 20_000);
      const rs = await back.next('resumed', (p) => p.room === 'side', 20_000);
      assert.deepEqual([rg.recovered, rs.recovered], [true, true]);
      assertContiguous(received(back, 'general'), lastGeneral + 1, lastGeneral + 120, 'general');
      assertContiguous(received(back, 'side'), side0 + 1, side0 + 80, 'side');
      assert.equal(rg.seq, lastGeneral + 120);
      assert.equal(rs.seq, side0 + 80);
      assert.equal(received(back, 'general').length + received(back, 'side').length, 200);
      // Live again afterwards.
      await sendMany(cb, 'side', 1, 'live');
      const live = await back.next('new_message', (m) => m.message === 'live-0');
      assert.equal(live.seq, side0 + 81);
      back.close();
      cb.close();
    });

    test('resume while messages keep arriving: none lost, none doubled', async () => {
      const { s } = await server();
      const [a, b] = [await account(s), await account(s)];
      const ca = await connect(s, a.otp);
      const start = (await sendMany(ca, 'general', 1, 'first'))[0] as number;
      ca.close();
      await ca.waitClose();
      const cb = await connect(s, b.otp);
      await sendMany(cb, 'general', 200, 'missed');
      // Keep sending while the resume runs: a steady trickle from b.
      let sending = true;
      let sent = 0;
      const trickle = (async () => {
        while (sending) {
          cb.send({ type: 'send_message', payload: { message: `during-${sent}` }, ref: `during-${sent}` });
          sent++;
          await sleep(1);
        }
      })();
      const back = await resumeSocket(s, await ticket(s, a.token));
      back.send({ type: 'resume', payload: { rooms: { general: start } } });
      const r = await back.next('resumed', () => true, 20_000);
      assert.equal(r.recovered, true);
      await sleep(50);
      sending = false;
      await trickle;
      const lastAck = (await cb.next('ack', (p) => p.ref === `during-${sent - 1}`, 20_000)).seq;
      await back.seen('new_message', (m) => m.seq === lastAck, 20_000);
      assertContiguous(stream(back, 'general'), start + 1, lastAck, 'replay + live (b\'s join among them)');
      assert.ok(r.seq >= start + 200, 'resumed after the replay');
      assert.ok(sent > 0);
      back.close();
      cb.close();
    });

    test('resume across a server restart', async () => {
      const { s, o } = await server();
      const [a, b] = [await account(s), await account(s)];
      const ca = await connect(s, a.otp);
      const cb = await connect(s, b.otp); // its member_joined goes before a's sends
      const seen = (await sendMany(ca, 'general', 5, 'pre'))[4] as number;
      ca.close();
      await sendMany(cb, 'general', 200, 'pre-restart');
      cb.close();
      await s.close();

      // Same database, new process state: tokens and history survive, seqs go on.
      const s2 = await startTestServer({ ...FAST, ...o });
      cleanups.push(() => s2.close());
      const back = await resumeSocket(s2, await ticket(s2, a.token));
      back.send({ type: 'resume', payload: { rooms: { general: seen } } });
      const r = await back.next('resumed', () => true, 20_000);
      assert.equal(r.recovered, true);
      assertContiguous(stream(back, 'general'), seen + 1, seen + 200, 'after restart');
      const cb2 = await connect(s2, await ticket(s2, b.token));
      const [next] = await sendMany(cb2, 'general', 1, 'post-restart');
      assert.equal(next, seen + 201, 'seq continues after the restart');
      back.close();
      cb2.close();
    });

    test('a gap partly beyond retention: what is stored is replayed in order, resumed.missing names the exact rest', async () => {
      const { s } = await server({ historyMaxPerRoom: 10 });
      const a = await account(s);
      const c = await connect(s, a.otp);
      await sendMany(c, 'general', 30, 'ret');
      await s.retention.runOnce();
      c.send({ type: 'history', payload: { room: 'general', limit: 100 } });
      // general: room_created (1), then the 30 messages (2..31); the newest 10 seqs are kept.
      assert.deepEqual((await c.next('history')).messages.map((m) => m.seq), [31, 30, 29, 28, 27, 26, 25, 24, 23, 22]);
      c.close();
      const back = await resumeSocket(s, await ticket(s, a.token));
      back.send({ type: 'resume', payload: { rooms: { general: 2 } } });
      const r = await back.next('resumed');
      assert.equal(r.recovered, false);
      assert.equal(r.seq, 31);
      assert.deepEqual(r.missing, { from: 3, to: 21 }, 'exactly the pruned seqs');
      assertContiguous(received(back, 'general'), 22, 31, 'what retention kept');
      back.frames.length = 0;
      // Within retention it recovers, with no missing range.
      back.send({ type: 'resume', payload: { rooms: { general: 25 } } });
      const ok = await back.next('resumed');
      assert.equal(ok.recovered, true);
      assert.equal(ok.missing, undefined);
      assertContiguous(received(back, 'general'), 26, 31, 'within retention');
      back.frames.length = 0;
      // A client ahead of the server (database reset) is told to start over from the server's latest.
      back.send({ type: 'resume', payload: { rooms: { general: 99 } } });
      const ahead = await back.next('resumed');
      assert.equal(ahead.recovered, false);
      assert.equal(ahead.seq, 31);
      assert.equal(received(back, 'general').length, 0);
      back.close();
    });

    test('a gap bigger than resumeMaxMessages: the newest resumeMaxMessages are replayed, the older part is reported missing', async () => {
      const { s } = await server({ resumeMaxMessages: 7 });
      const a = await account(s);
      const c = await connect(s, a.otp);
      await sendMany(c, 'general', 20, 'win');
      c.close();
      const back = await resumeSocket(s, await ticket(s, a.token));
      back.send({ type: 'resume', payload: { rooms: { general: 3 } } });
      const r = await back.next('resumed');
      assert.equal(r.recovered, false);
      assert.equal(r.seq, 21, 'room_created, then the 20 messages');
      assert.deepEqual(r.missing, { from: 4, to: 14 });
      assertContiguous(received(back, 'general'), 15, 21, 'the newest 7');
      back.close();
    });

    test('two resumes of one room on one connection run one after the other: each replays its whole range once', async () => {
      const { s } = await server();
      const a = await account(s);
      const c = await connect(s, a.otp);
      await sendMany(c, 'general', 120, 'two');
      c.close();
      const back = await resumeSocket(s, await ticket(s, a.token));
      back.send({ type: 'resume', payload: { rooms: { general: 0 } }, ref: 'first' });
      back.send({ type: 'resume', payload: { rooms: { general: 60 } }, ref: 'second' });
      const first = await back.next('resumed', (p, f) => f.ref === 'first');
      const second = await back.next('resumed', (p, f) => f.ref === 'second');
      assert.equal(first.seq, 121, 'room_created, then the 120 messages');
      assert.equal(second.seq, 121);
      const seqs = stream(back, 'general').map((m) => m.seq);
      assert.deepEqual(seqs, [...Array.from({ length: 121 }, (_, i) => i + 1), ...Array.from({ length: 61 }, (_, i) => 61 + i)]);
      // Resumes waiting behind the running one are bounded: past 4, rate_limited.
      back.frames.length = 0;
      for (let i = 0; i < 6; i++) back.send({ type: 'resume', payload: { rooms: { general: 100 } }, ref: `q${i}` });
      await back.waitCount('resumed', 4);
      const refused = back.all('error').filter((e) => e.code === 'rate_limited').map((e) => e.ref);
      assert.deepEqual(refused, ['q4', 'q5']);
      back.close();
    });

    test('resume validates its rooms', async () => {
      const { s } = await server({ maxRoomsPerConnection: 2 });
      const a = await account(s);
      const c = await resumeSocket(s, a.otp);
      c.send({ type: 'resume', payload: { rooms: { 'bad room': 1 } } });
      assert.equal((await c.next('error')).code, 'invalid_room');
      c.send({ type: 'resume', payload: { rooms: { a: 0, b: 0, c: 0 } } });
      assert.equal((await c.next('error')).code, 'too_many_rooms');
      c.send({ type: 'resume', payload: { rooms: { a: -1 } } });
      assert.equal((await c.next('error')).code, 'invalid_payload');
      // Thousands of rooms in one frame are refused by their count, before any is read.
      const many = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`room${i}`, i % 2 === 0 ? -1 : 0]));
      c.send({ type: 'resume', payload: { rooms: many }, ref: 'many' });
      const err = await c.next('error', (e) => e.ref === 'many');
      assert.equal(err.code, 'too_many_rooms');
      c.close();
      // Spellings of one room are one room, resumed from the lowest seq given.
      const { s: roomy } = await server();
      const b = await account(roomy);
      const d = await resumeSocket(roomy, b.otp);
      d.send({ type: 'resume', payload: { rooms: { Aa: 3, aA: 0, 'ＡＡ': 5, aa: 1 } }, ref: 'one' });
      assert.equal((await d.next('resumed', (p) => p.room === 'aa')).seq, 1, 'made by the resume, as a join makes it');
      await d.next('presence', (p) => p.room === 'aa');
      assert.equal(d.all('resumed').length, 0, 'one resumed for the four spellings');
      d.close();
    });

    test('resume takes every own key, __proto__ and constructor included', async () => {
      const { s } = await server();
      const a = await account(s);
      const c = await resumeSocket(s, a.otp);
      c.send('{"type":"resume","payload":{"rooms":{"general":0,"__proto__":0,"constructor":0}},"ref":"proto"}');
      const rooms = new Set<string>();
      for (let i = 0; i < 3; i++) rooms.add((await c.next('resumed')).room);
      assert.deepEqual([...rooms].sort(), ['__proto__', 'constructor', 'general']);
      c.send({ type: 'send_message', payload: { room: '__proto__', message: 'in a room of that name' }, ref: 'p1' });
      assert.equal((await c.next('ack', (p) => p.ref === 'p1')).room, '__proto__');
      c.close();
    });
  });
}

/** A TCP proxy to Postgres that can be made to refuse connections, like a database going down. */
class Outage {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  async up(): Promise<void> {
    const target = new URL(PG_URL);
    this.server = createServer((client) => {
      const upstream = (async () => {
        const { connect: tcp } = await import('node:net');
        return tcp(Number(target.port || 5432), target.hostname);
      })();
      upstream.then((u) => {
        this.sockets.add(client).add(u);
        client.pipe(u).pipe(client);
        const drop = () => {
          client.destroy();
          u.destroy();
        };
        client.on('error', drop).on('close', drop);
        u.on('error', drop).on('close', drop);
      });
    });
    await new Promise<void>((r) => (this.server as Server).listen(this.port, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }

  async down(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  url(): string {
    const u = new URL(PG_URL);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }
}

describe('store outage (postgres refusing connections)', () => {
  test('send_message gets unavailable, is never acked or broadcast, and the server recovers', async () => {
    const schema = freshSchema();
    const outage = new Outage();
    await outage.up();
    const s = await startTestServer({ ...FAST, store: 'postgres', postgresUrl: outage.url(), postgresSchema: schema });
    try {
      const a: Account = await account(s);
      const b: Account = await account(s);
      const ca = await connect(s, a.otp);
      const cb = await connect(s, b.otp);
      const [before] = await sendMany(ca, 'general', 1, 'ok');

      await outage.down();
      for (let i = 0; i < 5; i++) ca.send({ type: 'send_message', payload: { message: `lost-${i}` }, ref: `lost-${i}` });
      for (let i = 0; i < 5; i++) {
        const err = await ca.next('error', (p) => p.ref === `lost-${i}`, 15_000);
        assert.equal(err.code, 'unavailable');
      }
      assert.equal(ca.all('ack').filter((p) => String(p.ref).startsWith('lost')).length, 0, 'no phantom acks');
      const ready = await api(s.url, '/readyz', undefined, { method: 'GET' });
      assert.equal(ready.status, 503, 'not ready while the store is down');
      assert.equal(ca.closed, undefined, 'clients stay connected');

      await outage.up();
      const [after] = await sendMany(ca, 'general', 1, 'back');
      assert.equal(after, (before as number) + 1, 'refused messages took no seq');
      assert.equal((await api(s.url, '/readyz', undefined, { method: 'GET' })).status, 200);
      await cb.next('new_message', (m) => m.message === 'back-0');
      assert.equal(received(cb, 'general').filter((m) => m.message.startsWith('lost')).length, 0, 'nothing refused was broadcast');
      cb.send({ type: 'history', payload: { room: 'general' } });
      assert.deepEqual(chat((await cb.next('history')).messages).map((m) => m.message), ['back-0', 'ok-0']);
      // A refused message can be retried with the same ref once the store is back: stored once.
      ca.send({ type: 'send_message', payload: { message: 'lost-0' }, ref: 'lost-0' });
      const retry = await ca.next('ack', (p) => p.ref === 'lost-0');
      assert.equal(retry.seq, (after as number) + 1);
      ca.close();
      cb.close();
    } finally {
      await s.close();
      await outage.down();
      await dropSchema(schema);
    }
  });
});
