/**
 * @parley/client against a real server over real sockets.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, test } from 'node:test';
import type { ChatMessage } from '@parley/protocol';
import { ParleyClient, ParleyError, type StateEvent, type WebSocketConstructor } from '../src/index.js';
import { account, chat, client, fixture, connectionsOf, CountingFetch, rejectionCode, sleep, waitFor, WS } from './helpers.js';

const { server, track, adopt } = fixture();

/** Every new_message the app got, per room. */
function inbox(c: ParleyClient): ChatMessage[] {
  const got: ChatMessage[] = [];
  c.on('new_message', (m) => got.push(m));
  return got;
}

const seqsOf = (msgs: ChatMessage[], room: string) => msgs.filter((m) => m.room === room).map((m) => m.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const stateNames = (states: StateEvent[]) => states.map((s) => s.state);

describe('@parley/client', { timeout: 30_000 }, () => {
  test('connect, send and receive across two clients; acks and refusals', async () => {
    const s = await server({ maxMessageChars: 20, maxMessageBytes: 1024 });
    const [a, b] = [await account(s), await account(s)];
    const A = track(client(s, { token: a.token })); // an existing token
    const B = track(client(s, { username: b.name, password: b.password })); // logs in
    const inA = inbox(A.c);
    const inB = inbox(B.c);
    const presence: string[][] = [];
    B.c.on('presence', (p) => presence.push(p.users));
    await A.c.connect();
    await B.c.connect();
    assert.equal(A.c.state, 'open');
    assert.equal(A.c.user, a.name);
    assert.equal(B.c.user, b.name);
    assert.equal(typeof B.c.token, 'string', 'the token from /login is kept');
    assert.deepEqual([...A.c.followed], ['general']);
    assert.deepEqual([...A.c.rooms.keys()], ['general'], 'the membership the welcome listed');
    assert.equal(A.c.rooms.get('general')?.visibility, 'public');
    assert.deepEqual(stateNames(A.states), ['connecting', 'open']);
    assert.equal(A.fetcher.count('/ticket'), 1);
    assert.equal(B.fetcher.count('/login'), 1);
    assert.equal(B.fetcher.count('/ticket'), 0, 'the login otp opens the first connection');

    // general's first seqs are its room events (A and B made members on their first connect).
    const o = await s.store.lastSeq('general');
    const ack = await A.c.send('general', 'hello');
    assert.deepEqual(ack, { room: 'general', seq: o + 1 });
    const ack2 = await B.c.send('general', 'hi back');
    assert.equal(ack2.seq, o + 2);
    await waitFor(() => inA.length === 2 && inB.length === 2, 'both messages on both clients');
    assert.deepEqual(inB.map((m) => [m.seq, m.from, m.message]), [[o + 1, a.name, 'hello'], [o + 2, b.name, 'hi back']]);
    assert.deepEqual(inA.map((m) => m.seq), [o + 1, o + 2], 'the sender gets its own message too');
    assert.equal(A.c.lastSeq('general'), o + 2);
    assert.equal(A.c.lastSeq('elsewhere'), 0);
    assert.ok(presence.some((users) => users.includes(b.name)), 'presence is passed through');

    // Refusals reject with the server's code; the connection stays open.
    assert.equal(await rejectionCode(A.c.send('general', 'x'.repeat(21))), 'message_too_long');
    assert.equal(await rejectionCode(A.c.send('elsewhere', 'hi')), 'forbidden', 'not a member (and no such room: the same answer)');
    // A frame over maxMessageBytes would get the socket closed with 1009 (terminal): refused locally.
    assert.equal(await rejectionCode(A.c.send('general', 'y'.repeat(2000))), 'message_too_long');
    assert.equal(await rejectionCode(A.c.send('bad room', 'hi')), 'invalid_room');
    const err = await A.c.send('elsewhere', 'hi').catch((e: unknown) => e);
    assert.ok(err instanceof ParleyError);
    assert.equal(A.c.state, 'open');
    assert.deepEqual(stateNames(A.states), ['connecting', 'open'], 'no reconnect after the refusals');

    // join / history / leave.
    assert.deepEqual(await A.c.join('side'), { room: 'side', seq: 1 }, 'made by the join: its room event is seq 1');
    assert.ok(A.c.followed.has('side'));
    assert.ok(A.c.rooms.has('side'));
    await A.c.send('side', 'in side');
    const history = chat(await A.c.history('general'));
    assert.deepEqual(history.map((m) => m.message), ['hi back', 'hello'], 'newest first');
    assert.deepEqual(chat(await A.c.history('general', { before: o + 2, limit: 10 })).map((m) => m.seq), [o + 1]);
    await A.c.leave('side');
    assert.equal(A.c.followed.has('side'), false);
    assert.equal(A.c.rooms.has('side'), false, 'the membership ended');
    assert.equal(await rejectionCode(A.c.send('side', 'gone')), 'not_in_room', 'a public room: it could be joined again');
    assert.deepEqual(seqsOf(inB, 'side'), [], 'B does not follow side');

    // Typing goes to the others.
    const typing: string[] = [];
    B.c.on('typing', (t) => typing.push(t.user));
    A.c.typing('general');
    A.c.typing('general'); // throttled client-side
    await waitFor(() => typing.length === 1, 'typing notice');
    await sleep(50);
    assert.deepEqual(typing, [a.name]);

    // Registering an existing name is refused with the server's code.
    assert.equal(await rejectionCode(ParleyClient.register(s.url, a.name, 'whatever12')), 'username_taken');
    A.c.close();
    B.c.close();
  });

  test('reconnects after the server drops the socket, with a fresh ticket', async () => {
    const s = await server();
    const a = await account(s);
    const A = track(client(s, { token: a.token, reconnect: { baseMs: 50, capMs: 200 } }));
    await A.c.connect();
    assert.equal(A.fetcher.count('/ticket'), 1);
    const first = connectionsOf(s, a.name);
    assert.equal(first.length, 1);

    first[0]?.terminate('test'); // the client sees 1006
    await waitFor(() => A.c.state === 'reconnecting', 'reconnecting');
    await waitFor(() => A.c.state === 'open', 'open again');
    assert.deepEqual(stateNames(A.states), ['connecting', 'open', 'reconnecting', 'open']);
    assert.equal(A.states[2]?.code, 1006);
    assert.equal(A.fetcher.count('/ticket'), 2, 'a fresh ticket for the new connection');
    const second = connectionsOf(s, a.name);
    assert.equal(second.length, 1);
    assert.notEqual(second[0], first[0]);

    // A server-side close with a reconnectable code (1011) too.
    second[0]?.close(1011, 'test');
    await waitFor(() => A.states.length === 6, 'second reconnect');
    assert.deepEqual(stateNames(A.states).slice(4), ['reconnecting', 'open']);
    assert.equal(A.states[4]?.code, 1011);
    assert.equal(A.fetcher.count('/ticket'), 3);
    const at = await s.store.lastSeq('general');
    assert.equal((await A.c.send('general', 'still here')).seq, at + 1);
    A.c.close();
  });

  test('reconnect delays: full jitter within [0, min(cap, base * 2^attempt)), attempt resets once open', async () => {
    const s = await server();
    const a = await account(s);
    const base = 40;
    const cap = 200;
    const A = track(client(s, { token: a.token, reconnect: { baseMs: base, capMs: cap } }));
    await A.c.connect();
    // The next 5 ticket requests fail like a network error: 5 failed attempts in a row.
    let failures = 5;
    A.fetcher.failWhen = (_host, path) => path === '/ticket' && failures-- > 0;
    const before = A.states.length;
    connectionsOf(s, a.name)[0]?.terminate('test');
    await waitFor(() => A.c.state === 'open' && A.states.length > before + 1, 'open after the failures', 15_000);
    const retries = A.states.slice(before).filter((st) => st.state === 'reconnecting');
    assert.deepEqual(retries.map((r) => r.attempt), [0, 1, 2, 3, 4, 5]);
    for (const r of retries) {
      const ceiling = Math.min(cap, base * 2 ** (r.attempt as number));
      assert.ok((r.delayMs as number) >= 0 && (r.delayMs as number) < ceiling, `attempt ${r.attempt}: ${r.delayMs} in [0, ${ceiling})`);
    }
    // The attempts really waited their delays: each ticket request comes >= delay after the previous one.
    const tickets = A.fetcher.calls.filter((c) => c.path === '/ticket').slice(-6);
    for (let i = 1; i < tickets.length; i++) {
      const waited = (tickets[i]?.at as number) - (tickets[i - 1]?.at as number);
      assert.ok(waited >= Math.floor(retries[i]?.delayMs as number) - 2, `retry ${i} waited ${waited} ms for a ${retries[i]?.delayMs} ms delay`);
    }
    // Once open, the count starts over.
    connectionsOf(s, a.name)[0]?.terminate('test');
    await waitFor(() => A.states.at(-1)?.state === 'open' && A.states.at(-2)?.attempt === 0, 'attempt 0 again');

    // And with an injected random the delays are exactly random() * ceiling.
    const B = track(client(s, { token: a.token, reconnect: { baseMs: 100, capMs: 150 }, random: () => 0.5 }));
    await B.c.connect();
    let fail = 2;
    B.fetcher.failWhen = (_h, path) => path === '/ticket' && fail-- > 0;
    for (const conn of connectionsOf(s, a.name)) conn.terminate('test');
    await waitFor(() => B.c.state === 'open' && B.states.length > 4, 'B open');
    assert.deepEqual(
      B.states.filter((st) => st.state === 'reconnecting').map((st) => st.delayMs),
      [50, 75, 75],
    );
    A.c.close();
    B.c.close();
  });

  test('resume without gaps or duplicates while another client keeps sending and the socket keeps dropping', async () => {
    const s = await server();
    const [a, b] = [await account(s), await account(s)];
    const A = track(client(s, { token: a.token, rooms: ['flow'], reconnect: { baseMs: 20, capMs: 100 } }));
    const B = track(client(s, { token: b.token, rooms: ['flow'] }));
    const gaps: unknown[] = [];
    A.c.on('gap', (g) => gaps.push(g));
    const inA = inbox(A.c);
    await A.c.connect();
    await B.c.connect();
    const o = await s.store.lastSeq('flow'); // the room events of the two joins

    const N = 300;
    let drops = 0;
    let sending = true;
    const dropper = (async () => {
      while (sending) {
        await sleep(250);
        const conns = connectionsOf(s, a.name);
        if (conns.length === 0) continue;
        if (drops % 2 === 0) conns[0]?.terminate('test');
        else conns[0]?.close(1011, 'test');
        drops++;
      }
    })();
    const acks: Promise<{ seq: number }>[] = [];
    let seqs: number[];
    try {
      for (let i = 0; i < N; i++) {
        acks.push(B.c.send('flow', `m${i}`));
        await sleep(5);
      }
      seqs = (await Promise.all(acks)).map((x) => x.seq);
    } finally {
      sending = false;
      await dropper;
    }
    assert.deepEqual(seqs, range(o + 1, o + N), 'B stored every message once, in order');
    await waitFor(() => A.c.lastSeq('flow') === o + N && A.c.state === 'open', `A at seq ${N}`, 15_000);
    await sleep(100);
    assert.ok(drops >= 3, `the socket was dropped ${drops} times`);
    assert.ok(A.states.filter((st) => st.state === 'reconnecting').length >= 3, 'A reconnected several times');
    assert.deepEqual(seqsOf(inA, 'flow'), range(o + 1, o + N), 'A got every seq exactly once, in order');
    assert.deepEqual(inA.map((m) => m.message), range(0, N - 1).map((i) => `m${i}`));
    assert.deepEqual(gaps, []);
    A.c.close();
    B.c.close();
  });

  test('a send whose ack is lost is re-sent with the same ref and stored once', async () => {
    const s = await server();
    const [a, b] = [await account(s), await account(s)];
    const A = track(client(s, { token: a.token, reconnect: { baseMs: 20, capMs: 100 } }));
    const B = track(client(s, { token: b.token }));
    const inB = inbox(B.c);
    await A.c.connect();
    await B.c.connect();

    // Server side: swallow the first ack to A and kill the socket, as if the network died.
    const conn = connectionsOf(s, a.name)[0];
    assert.ok(conn !== undefined);
    const original = conn.send.bind(conn);
    const swallowed: unknown[] = [];
    conn.send = ((type, payload, ref) => {
      if (type === 'ack' && swallowed.length === 0) {
        swallowed.push(payload);
        conn.terminate('test: ack lost');
        return false;
      }
      return original(type, payload, ref);
    }) as typeof conn.send;
    // The resent frame's ref, as the next connection receives it.
    const refs: string[] = [];
    const handle = s.hub.handleFrame.bind(s.hub);
    s.hub.handleFrame = (c, data, isBinary) => {
      const f = JSON.parse(String(data)) as { type: string; ref?: string };
      if (f.type === 'send_message' && f.ref !== undefined) refs.push(f.ref);
      handle(c, data, isBinary);
    };

    const o = await s.store.lastSeq('general');
    const ack = await A.c.send('general', 'exactly once');
    assert.equal(swallowed.length, 1, 'the first ack was lost');
    assert.ok(stateNames(A.states).includes('reconnecting'), 'A reconnected');
    assert.equal(refs.length, 2, 'sent twice');
    assert.equal(refs[0], refs[1], 'with the same ref');
    assert.equal(ack.seq, o + 1, 'resolved with the original seq');
    await B.c.send('general', 'after');
    await waitFor(() => inB.length >= 2, 'B got both');
    await sleep(50);
    assert.deepEqual(inB.map((m) => m.message), ['exactly once', 'after']);
    assert.deepEqual(chat(await B.c.history('general')).map((m) => m.message), ['after', 'exactly once'], 'stored once');
    A.c.close();
    B.c.close();
  });

  test('logout closes the client for good (4500): no reconnect', async () => {
    const s = await server();
    const a = await account(s);
    const A = track(client(s, { username: a.name, password: a.password, reconnect: { baseMs: 10, capMs: 20 } }));
    await A.c.connect();
    const token = A.c.token as string;
    const res = await fetch(`${s.url}/logout`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    await waitFor(() => A.c.state === 'closed', 'closed');
    const last = A.states.at(-1);
    assert.equal(last?.code, 4500);
    assert.equal(last?.error?.code, 'session_revoked');
    const calls = A.fetcher.calls.length;
    await sleep(200);
    assert.equal(A.c.state, 'closed');
    assert.equal(A.fetcher.calls.length, calls, 'no ticket or login attempted after a terminal close');
    assert.equal(connectionsOf(s, a.name).length, 0);
    assert.deepEqual(stateNames(A.states), ['connecting', 'open', 'closed']);
    assert.equal(await rejectionCode(A.c.send('general', 'too late')), 'closed');
  });

  test('a rejected token without credentials ends in closed with auth', async () => {
    const s = await server();
    const a = await account(s);
    const A = track(client(s, { token: a.token }));
    await fetch(`${s.url}/logout`, { method: 'POST', headers: { authorization: `Bearer ${a.token}` } });
    assert.equal(await rejectionCode(A.c.connect()), 'auth');
    assert.equal(A.c.state, 'closed');
    assert.equal(A.states.at(-1)?.error?.code, 'auth');
    // With a password, the client logs in again instead.
    const B = track(client(s, { token: a.token, username: a.name, password: a.password }));
    await B.c.connect();
    assert.equal(B.fetcher.count('/login'), 1);
    assert.notEqual(B.c.token, a.token);
    B.c.close();
  });

  test('messages sent while offline are delivered once when back online', async () => {
    const s = await server();
    const [a, b] = [await account(s), await account(s)];
    const B = track(client(s, { token: b.token }));
    const inB = inbox(B.c);
    await B.c.connect();
    const A = track(client(s, { token: a.token, reconnect: { baseMs: 300, capMs: 300 }, random: () => 0.9 }));
    // Before connect() was ever called.
    const early = [A.c.send('general', 'early-1'), A.c.send('general', 'early-2')];
    await sleep(50);
    assert.equal(A.c.state, 'idle');
    assert.equal(inB.length, 0, 'nothing sent yet');
    await A.c.connect();
    const o = (await Promise.all(early))[0]?.seq ?? 0;
    assert.ok(o > 1, 'after the room events of B and A joining general');
    assert.deepEqual((await Promise.all(early)).map((x) => x.seq), [o, o + 1]);
    // While reconnecting (the delay is 270 ms).
    connectionsOf(s, a.name)[0]?.terminate('test');
    await waitFor(() => A.c.state === 'reconnecting', 'reconnecting');
    const during = [A.c.send('general', 'during-1'), A.c.send('general', 'during-2')];
    assert.equal(A.c.state, 'reconnecting');
    assert.deepEqual((await Promise.all(during)).map((x) => x.seq), [o + 2, o + 3]);
    await waitFor(() => inB.length >= 4, 'B got 4');
    await sleep(100);
    assert.deepEqual(inB.map((m) => m.message), ['early-1', 'early-2', 'during-1', 'during-2']);
    assert.deepEqual(chat(await B.c.history('general')).map((m) => m.seq), [o + 3, o + 2, o + 1, o]);
    A.c.close();
    B.c.close();
  });

  test('a long offline queue is paced to the server rate limit: no refusals, no flood close', async () => {
    // A small burst allowance: 30 frames at once would be refused and closed as a flood (1008).
    const s = await server({ rateLimitPerSec: 20, rateLimitBurst: 2 });
    const a = await account(s);
    const A = track(client(s, { token: a.token }));
    const errors: unknown[] = [];
    A.c.on('error', (e) => errors.push(e));
    const sends = Array.from({ length: 30 }, (_, i) => A.c.send('general', `q${i}`));
    const t0 = Date.now();
    await A.c.connect();
    const seqs = (await Promise.all(sends)).map((x) => x.seq);
    const took = Date.now() - t0;
    assert.deepEqual(seqs, range(2, 31), 'each stored once, in order (after the room event of joining general), none refused and retried');
    assert.ok(took >= 1400, `paced: 31 frames at 18/s take about 1.7 s, took ${took} ms`);
    assert.deepEqual(errors, []);
    assert.deepEqual(stateNames(A.states), ['connecting', 'open']);
    A.c.close();
  });

  test('close() is clean: code 1000, state closed, no reconnect, pending sends reject with closed', async () => {
    const s = await server();
    const a = await account(s);
    const A = track(client(s, { token: a.token, reconnect: { baseMs: 10, capMs: 20 } }));
    await A.c.connect();
    const conn = connectionsOf(s, a.name)[0];
    assert.ok(conn !== undefined);
    const serverSaw: number[] = [];
    conn.ws.on('close', (code: number) => serverSaw.push(code));
    // Acks never arrive, so the send stays pending.
    const original = conn.send.bind(conn);
    conn.send = ((type, payload, ref) => (type === 'ack' ? true : original(type, payload, ref))) as typeof conn.send;
    const pending = A.c.send('general', 'unacked');
    pending.catch(() => undefined);
    for (let i = 0; (await s.store.lastSeq('general')) < 1; i++) {
      assert.ok(i < 1000, 'stored on the server');
      await sleep(5);
    }
    const unsentLater = A.c.history('general');
    A.c.close();
    assert.equal(A.c.state, 'closed');
    assert.equal(await rejectionCode(pending), 'closed');
    assert.equal(await rejectionCode(unsentLater), 'closed');
    await waitFor(() => serverSaw.length === 1, 'server-side close');
    assert.deepEqual(serverSaw, [1000]);
    const last = A.states.at(-1);
    assert.deepEqual(last, { state: 'closed', code: 1000 });
    const calls = A.fetcher.calls.length;
    await sleep(150);
    assert.equal(A.fetcher.calls.length, calls, 'no reconnect');
    assert.equal(connectionsOf(s, a.name).length, 0);
    assert.deepEqual(stateNames(A.states), ['connecting', 'open', 'closed']);
    assert.equal(await rejectionCode(A.c.send('general', 'after close')), 'closed');
  });

  test('failover: with [dead, live] the client ends up on the live server', async () => {
    const s = await server();
    const a = await account(s);
    // A port with nothing listening.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const deadPort = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const dead = `http://127.0.0.1:${deadPort}`;
    const fetcher = new CountingFetch();
    const A = track(client(s, { url: [dead, s.url], token: a.token, reconnect: { baseMs: 20, capMs: 50 } }, fetcher));
    await A.c.connect();
    assert.equal(A.c.state, 'open');
    assert.equal(A.c.user, a.name);
    assert.deepEqual(
      fetcher.calls.map((c) => c.host),
      [`127.0.0.1:${deadPort}`, new URL(s.url).host],
      'tried the dead one, then moved to the next',
    );
    assert.deepEqual(stateNames(A.states), ['connecting', 'reconnecting', 'open']);
    assert.equal(connectionsOf(s, a.name).length, 1);
    assert.equal((await A.c.send('general', 'via failover')).seq, 2, 'after the room event of joining general');
    A.c.close();
  });

  test('gives up after maxAttempts failed attempts: closed with unreachable', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const dead = `http://127.0.0.1:${(probe.address() as { port: number }).port}`;
    await new Promise<void>((r) => probe.close(() => r()));
    const A = track(client({ url: dead }, { token: 'x'.repeat(43), reconnect: { baseMs: 10, capMs: 20, maxAttempts: 2 } }));
    assert.equal(await rejectionCode(A.c.connect()), 'unreachable');
    assert.deepEqual(
      A.states.map((st) => [st.state, st.attempt]),
      [['connecting', undefined], ['reconnecting', 0], ['reconnecting', 1], ['closed', undefined]],
    );
    assert.equal(A.fetcher.count('/ticket'), 3);
  });

  test('room names are case-insensitive on both ends: any spelling is one room, named as the server names it', async () => {
    const s = await server();
    const [a, b] = [await account(s), await account(s)];
    const A = track(client(s, { token: a.token, rooms: ['General', 'DESIGN'] }));
    const B = track(client(s, { token: b.token, rooms: ['ｄｅｓｉｇｎ'] }));
    const inB = inbox(B.c);
    await A.c.connect();
    await B.c.connect();
    assert.deepEqual([...A.c.followed].sort(), ['design', 'general']);
    assert.deepEqual([...B.c.followed].sort(), ['design', 'general'], 'general too: every user is a member of it');
    const ack = await A.c.send('Design', 'one room');
    assert.equal(ack.room, 'design');
    await waitFor(() => inB.some((m) => m.message === 'one room' && m.room === 'design'), 'B gets it in "design"');
    assert.equal(B.c.lastSeq('DeSiGn'), ack.seq, 'lastSeq takes any spelling too');
    assert.deepEqual(chat(await B.c.history('DESIGN')).map((m) => m.message), ['one room']);
    await B.c.leave('DESIGN');
    assert.deepEqual([...B.c.followed], ['general']);
    assert.deepEqual([...B.c.rooms.keys()], ['general']);
  });

  test('text no store can keep is refused locally, before it is queued', async () => {
    const s = await server();
    const a = await account(s);
    const A = track(client(s, { token: a.token }));
    await A.c.connect();
    assert.equal(await rejectionCode(A.c.send('general', 'nul \u0000')), 'invalid_payload');
    assert.equal(await rejectionCode(A.c.send('general', 'lone \ud800')), 'invalid_payload');
    assert.ok((await A.c.send('general', 'fine 😀')).seq > 0);
  });

  test('the WebSocket option accepts the ws package and DOM WebSocket constructors', () => {
    // Compile-time: both constructors fit WebSocketConstructor.
    const dom: WebSocketConstructor | undefined = (globalThis as { WebSocket?: typeof WebSocket }).WebSocket;
    const fromWs: WebSocketConstructor = WS;
    assert.equal(typeof fromWs, 'function');
    if (dom === undefined) assert.throws(() => new ParleyClient({ url: 'http://127.0.0.1:1' }), TypeError, 'no global WebSocket on Node 20');
    const c = new ParleyClient({ url: 'http://127.0.0.1:1', WebSocket: WS, rooms: ['a', 'b'] });
    assert.deepEqual([...c.followed], ['a', 'b']);
    assert.equal(c.state, 'idle');
    assert.throws(() => new ParleyClient({ url: 'http://127.0.0.1:1', WebSocket: WS, rooms: ['no spaces'] }), ParleyError);
    assert.throws(() => new ParleyClient({ url: 'ftp://127.0.0.1:1', WebSocket: WS }), TypeError);
  });
});
