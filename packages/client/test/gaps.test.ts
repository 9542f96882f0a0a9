/**
 * Gaps, against a real server over real sockets: the SDK delivers every stored message of a room
 * once and in order, and reports exactly the range the server no longer has (`gap {from, to}`).
 *
 * - after a reconnect, what the resume did not replay (beyond resumeMaxMessages, or pruned by
 *   retention: the server replays around it and names it in `resumed.missing`) is read from
 *   history; what history lost too is the gap (an older server that replays nothing and sends no
 *   `missing` is handled by the same path: rooms.test.ts);
 * - a hole in live delivery (a frame the server never sent) is filled by a resume of the room
 *   on the live connection: no reconnect, nothing delivered out of order;
 * - a server whose database was reset is behind the client's position: one gap says so.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { ChatMessage } from '@parley/protocol';
import { type GapEvent, ParleyClient } from '../src/index.js';
import { account, chat, client, fixture, connectionsOf, FAST, Recorder, type ServerConnection, sleep, startTestServer, waitFor, WS } from './helpers.js';

const { server, track, adopt } = fixture();

/**
 * The room's seq once the test's clients have joined it: its first seqs are room events (made by
 * the first join, joined by the second), so the test's messages start at this + 1.
 */
const base = (s: { store: { lastSeq(room: string): Promise<number> } }, room: string): Promise<number> => s.store.lastSeq(room);

/** The `resume`s an SDK sent to fill holes in live delivery (not the connection's own, which resume the listed rooms). */
const fillsOf = (rec: Recorder) => rec.sent('resume').filter((f) => typeof f.ref === 'string' && f.ref.startsWith('fill-'));

/** What the app saw of `room`, in order: a message as its seq, a gap as itself. */
function stream(c: ParleyClient, room: string): (number | GapEvent)[] {
  const out: (number | GapEvent)[] = [];
  c.on('new_message', (m) => {
    if (m.room === room) out.push(m.seq);
  });
  c.on('gap', (g) => {
    if (g.room === room) out.push(g);
  });
  return out;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const gap = (room: string, from: number, to: number, seq = to): GapEvent => ({ room, from, to, seq });

/** Drops, on the server, the first copy of each listed seq's `new_message` to `conn` (a frame lost on its way). */
function loseFrames(conn: ServerConnection, seqs: Iterable<number>): Set<number> {
  const left = new Set(seqs);
  const original = conn.sendFrame.bind(conn);
  conn.sendFrame = (data, reply) => {
    const m = /"type":"new_message","payload":\{.*?"seq":(\d+)/.exec(data.toString('utf8'));
    if (m !== null && left.delete(Number(m[1]))) return true;
    return original(data, reply);
  };
  return left;
}

describe('@parley/client gaps', { timeout: 60_000 }, () => {
  test('a resume beyond resumeMaxMessages: the rest comes from history, every message once, in order, no gap', async () => {
    const s = await server({ resumeMaxMessages: 5 });
    const [a, b] = [await account(s), await account(s)];
    const rec = new Recorder();
    const A = track(client(s, { token: a.token, rooms: ['far'], WebSocket: rec.WebSocket }));
    const B = track(client(s, { token: b.token, rooms: ['far'] }));
    const seen = stream(A.c, 'far');
    await A.c.connect();
    await B.c.connect();
    const o = await base(s, 'far');
    await B.c.send('far', 'first');
    await waitFor(() => A.c.lastSeq('far') === o + 1, 'A saw 1');
    A.c.close();
    // A few missed: replayed on the next connect (close() keeps the positions).
    for (let i = 0; i < 3; i++) await B.c.send('far', `few-${i}`);
    await A.c.connect();
    assert.equal(A.c.lastSeq('far'), o + 4, 'replayed before open');
    assert.deepEqual(rec.sent('history'), [], 'a replay the server could do reads no history');
    A.c.close();
    // Many missed (20, more than resumeMaxMessages): not all replayed; the SDK reads the rest.
    for (let i = 0; i < 20; i++) await B.c.send('far', `many-${i}`);
    await A.c.connect();
    assert.equal(A.c.lastSeq('far'), o + 24, 'everything delivered before connect() resolved');
    const resumed = rec.last.received.flatMap((f) => (f.type === 'resumed' && f.payload.room === 'far' ? [f.payload] : []));
    assert.equal(resumed.length, 1);
    assert.equal(resumed[0]?.recovered, false, 'the server could not replay it all');
    assert.deepEqual(resumed[0]?.missing, { from: o + 5, to: o + 19 }, 'the server replayed the newest 5 and names the older part');
    assert.deepEqual(
      rec.sent('history').map((f) => f.payload),
      [{ room: 'far', before: o + 20, limit: 15 }],
      'the SDK read the missing part from history, in one page',
    );
    await B.c.send('far', 'live');
    await waitFor(() => A.c.lastSeq('far') === o + 25, 'live again');
    assert.deepEqual(seen, range(o + 1, o + 25), 'every seq once, in order, and no gap: history had them all');
    assert.equal(A.c.state, 'open');
  });

  test('retention pruned part of what was missed: one gap with the exact range, in its place, then the rest once, in order', async () => {
    const s = await server({ historyMaxPerRoom: 5 });
    const [a, b] = [await account(s), await account(s)];
    const rec = new Recorder();
    const A = track(client(s, { token: a.token, rooms: ['kept'], WebSocket: rec.WebSocket }));
    const B = track(client(s, { token: b.token, rooms: ['kept'] }));
    const seen = stream(A.c, 'kept');
    let lastAtGap = -1;
    A.c.on('gap', (g) => (lastAtGap = A.c.lastSeq(g.room)));
    await A.c.connect();
    await B.c.connect();
    const o = await base(s, 'kept');
    for (let i = 1; i <= 3; i++) await B.c.send('kept', `m${i}`);
    await waitFor(() => A.c.lastSeq('kept') === o + 3, 'A saw 3');
    A.c.close();
    for (let i = 4; i <= 23; i++) await B.c.send('kept', `m${i}`);
    await s.retention.runOnce(); // keeps the newest 5: 19..23
    assert.deepEqual((await B.c.history('kept')).map((m) => m.seq - o), [23, 22, 21, 20, 19]);
    await A.c.connect();
    assert.deepEqual(seen, [o + 1, o + 2, o + 3, gap('kept', o + 4, o + 18), ...range(o + 19, o + 23)]);
    assert.deepEqual(
      rec.last.received.flatMap((f) => (f.type === 'resumed' && f.payload.room === 'kept' ? [f.payload] : [])),
      [{ room: 'kept', seq: o + 23, recovered: false, missing: { from: o + 4, to: o + 18 } }],
      'the server replayed around what retention deleted',
    );
    assert.deepEqual(rec.last.sent.filter((f) => f.type === 'history').map((f) => f.payload), [{ room: 'kept', before: o + 19, limit: 15 }], 'one look in history, which has none of them');
    assert.equal(lastAtGap, o + 18, 'lastSeq is the gap’s seq while its listeners run');
    await B.c.send('kept', 'm24');
    await waitFor(() => A.c.lastSeq('kept') === o + 24, 'live again');
    assert.deepEqual(seen.slice(-2), [o + 23, o + 24]);
  });

  test('maxBackfill bounds what is read from history: the older rest is one exact gap', async () => {
    const s = await server({ resumeMaxMessages: 5 });
    const [a, b] = [await account(s), await account(s)];
    const rec = new Recorder();
    const A = track(client(s, { token: a.token, rooms: ['bound'], maxBackfill: 4, WebSocket: rec.WebSocket }));
    const B = track(client(s, { token: b.token, rooms: ['bound'] }));
    const seen = stream(A.c, 'bound');
    await A.c.connect();
    await B.c.connect();
    const o = await base(s, 'bound');
    await B.c.send('bound', 'first');
    await waitFor(() => A.c.lastSeq('bound') === o + 1, 'A saw 1');
    A.c.close();
    for (let i = 0; i < 30; i++) await B.c.send('bound', `m${i}`);
    await A.c.connect();
    assert.equal(A.c.lastSeq('bound'), o + 31);
    // The server replayed the newest 5 (27..31) and named 2..26 missing; 4 of those came from history.
    assert.deepEqual(seen, [o + 1, gap('bound', o + 2, o + 22), ...range(o + 23, o + 31)]);
    assert.deepEqual(rec.sent('history').map((f) => f.payload), [{ room: 'bound', before: o + 27, limit: 4 }], 'history asked for maxBackfill messages, no more');
  });

  test('a frame lost in live delivery: not delivered past the hole; the room is replayed on the live connection, no reconnect, no gap', async () => {
    const s = await server();
    const [a, b] = [await account(s), await account(s)];
    const rec = new Recorder();
    const A = track(client(s, { token: a.token, rooms: ['holes'], WebSocket: rec.WebSocket }));
    const B = track(client(s, { token: b.token, rooms: ['holes'] }));
    const seen = stream(A.c, 'holes');
    await A.c.connect();
    await B.c.connect();
    const conn = connectionsOf(s, a.name)[0];
    assert.ok(conn !== undefined);
    const o = await base(s, 'holes');
    const lost = loseFrames(conn, [3, 12, 13, 25].map((x) => o + x));
    const N = 30;
    for (let i = 1; i <= N; i++) await B.c.send('holes', `m${i}`);
    await waitFor(() => A.c.lastSeq('holes') === o + N, `A at ${N}`);
    await sleep(100);
    assert.equal(lost.size, 0, 'the frames were lost');
    assert.deepEqual(seen, range(o + 1, o + N), 'every seq once, in order, no gap');
    // Every resume but the connection's own (of general, listed in the welcome) is a fill of a hole.
    const fills = fillsOf(rec);
    assert.ok(fills.length >= 1 && fills.length <= 3, `a resume per hole (${fills.length})`);
    for (const f of fills) assert.deepEqual(Object.keys((f.payload as { rooms: object }).rooms), ['holes']);
    assert.deepEqual(rec.sent('history'), [], 'the replays had everything');
    assert.equal(rec.sockets.length, 1, 'on the same connection');
    assert.deepEqual(A.states.map((st) => st.state), ['connecting', 'open'], 'the fills do not change the state');
  });

  test('holes in many rooms at once: at most 2 fills unanswered, the other rooms go together in the next; nothing refused', async () => {
    const s = await server();
    const [a, b] = [await account(s), await account(s)];
    const names = ['h0', 'h1', 'h2', 'h3', 'h4', 'h5'];
    const rec = new Recorder();
    const A = track(client(s, { token: a.token, rooms: names, WebSocket: rec.WebSocket }));
    const B = track(client(s, { token: b.token, rooms: names }));
    const streams = names.map((room) => stream(A.c, room));
    const errors: unknown[] = [];
    A.c.on('error', (e) => errors.push(e));
    await A.c.connect();
    await B.c.connect();
    const conn = connectionsOf(s, a.name)[0];
    assert.ok(conn !== undefined);
    const original = conn.sendFrame.bind(conn);
    let lostOnes = 0;
    conn.sendFrame = (data, reply) => {
      // Each room's first message: seq 3 (after the room events of A's and B's joins).
      if (/"type":"new_message","payload":\{.*?"seq":3,/.test(data.toString('utf8')) && lostOnes < names.length) {
        lostOnes++;
        return true;
      }
      return original(data, reply);
    };
    // A's resumes wait at the server until the test lets them through.
    const held: (() => void)[] = [];
    const handle = s.hub.handleFrame.bind(s.hub);
    s.hub.handleFrame = (c, data, isBinary) => {
      if (c === conn && String(data).includes('"type":"resume"')) held.push(() => handle(c, data, isBinary));
      else handle(c, data, isBinary);
    };
    for (const room of names) await B.c.send(room, `${room}-1`);
    await Promise.all(names.map((room) => B.c.send(room, `${room}-2`)));
    await waitFor(() => rec.last.received.filter((f) => f.type === 'new_message').length === names.length, 'every seq 2 reached A');
    await waitFor(() => held.length === 2, 'two fills at the server');
    await sleep(50);
    assert.equal(fillsOf(rec).length, 2, 'two fills unanswered, the other four rooms wait');
    assert.deepEqual(streams.map((x) => x.length), [0, 0, 0, 0, 0, 0], 'nothing delivered past a hole');
    s.hub.handleFrame = handle;
    for (const release of held.splice(0)) release();
    await waitFor(() => names.every((room) => A.c.lastSeq(room) === 4), 'every room at 4');
    const resumes = fillsOf(rec).map((f) => Object.keys((f.payload as { rooms: object }).rooms).sort());
    assert.equal(resumes.length, 3, `the four waiting rooms in one resume: ${JSON.stringify(resumes)}`);
    assert.deepEqual(resumes.flat().sort(), names);
    for (const x of streams) assert.deepEqual(x, [3, 4]);
    assert.deepEqual(errors, [], 'no resume refused');
    assert.equal(rec.sockets.length, 1);
  });

  test('a live hole whose messages retention pruned before the replay: the exact gap, the connection stays open', async () => {
    const s = await server({ historyMaxPerRoom: 5 });
    const [a, b] = [await account(s), await account(s)];
    const rec = new Recorder();
    const A = track(client(s, { token: a.token, rooms: ['pruned'], WebSocket: rec.WebSocket }));
    const B = track(client(s, { token: b.token, rooms: ['pruned'] }));
    const seen = stream(A.c, 'pruned');
    await A.c.connect();
    await B.c.connect();
    const o = await base(s, 'pruned');
    for (let i = 1; i <= 3; i++) await B.c.send('pruned', `m${i}`);
    await waitFor(() => A.c.lastSeq('pruned') === o + 3, 'A at 3');
    const conn = connectionsOf(s, a.name)[0];
    assert.ok(conn !== undefined);
    loseFrames(conn, range(o + 4, o + 12));
    // A's resume of the room waits until retention ran: 4..8 are gone by then.
    const handle = s.hub.handleFrame.bind(s.hub);
    s.hub.handleFrame = (c, data, isBinary) => {
      if (c === conn && String(data).includes('"type":"resume"')) void s.retention.runOnce().then(() => handle(c, data, isBinary));
      else handle(c, data, isBinary);
    };
    for (let i = 4; i <= 13; i++) await B.c.send('pruned', `m${i}`);
    await waitFor(() => A.c.lastSeq('pruned') === o + 13, 'A at 13');
    assert.deepEqual(seen, [o + 1, o + 2, o + 3, gap('pruned', o + 4, o + 8), ...range(o + 9, o + 13)]);
    assert.equal(rec.sockets.length, 1, 'no reconnect');
    assert.equal(A.c.state, 'open');
  });

  test('a server whose database was reset is behind the position: one gap, lastSeq moves back, new messages flow', async () => {
    const first = await startTestServer(FAST);
    const port = first.port;
    const a = await account(first);
    const A = track(client(first, { token: a.token, username: a.name, password: a.password, rooms: ['reset'], reconnect: { baseMs: 50, capMs: 200 } }));
    const seen = stream(A.c, 'reset');
    await A.c.connect();
    const o = await base(first, 'reset'); // 1: the room_created of A's join
    for (let i = 1; i <= 5; i++) await A.c.send('reset', `old-${i}`);
    await waitFor(() => A.c.lastSeq('reset') === o + 5, 'A at 5');
    await first.stop();
    // A fresh data dir on the same port: the account is registered again, the old token is unknown.
    // A fresh data dir on the same port, where the account exists again (registered before the
    // server listens there: A must not log in before it does); the old token is unknown there.
    const dataDir = mkdtempSync(join(tmpdir(), 'parley-reset-'));
    try {
      const setup = await startTestServer({ ...FAST, dataDir });
      await ParleyClient.register(setup.url, a.name, a.password);
      // The account is a member of `reset` there too (at its seq 1), so the welcome lists the room and A resumes it.
      const again = new ParleyClient({ url: setup.url, WebSocket: WS, username: a.name, password: a.password, rooms: ['reset'] });
      await again.connect();
      again.close();
      await setup.close();
      const fresh = await startTestServer({ ...FAST, dataDir, port });
      adopt(fresh);
      await waitFor(() => A.c.state === 'open' && A.states.filter((st) => st.state === 'open').length === 2, 'open on the fresh server', 20_000);
      assert.deepEqual(seen, [...range(o + 1, o + 5), gap('reset', 2, o + 5, 1)]);
      assert.equal(A.c.lastSeq('reset'), 1);
      assert.equal((await A.c.send('reset', 'new-1')).seq, 2);
      await waitFor(() => A.c.lastSeq('reset') === 2, 'the new seq 2 delivered');
      assert.deepEqual(seen.at(-1), 2);
      A.c.close();
      await fresh.stop();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('messages of several rooms: a gap in one does not hold up the others', async () => {
    const s = await server({ historyMaxPerRoom: 3 });
    const [a, b] = [await account(s), await account(s)];
    const A = track(client(s, { token: a.token, rooms: ['one', 'two'] }));
    const B = track(client(s, { token: b.token, rooms: ['one', 'two'] }));
    const one = stream(A.c, 'one');
    const two = stream(A.c, 'two');
    await A.c.connect();
    await B.c.connect();
    const o = await base(s, 'one');
    assert.equal(await base(s, 'two'), o);
    await B.c.send('one', 'x');
    await B.c.send('two', 'y');
    await waitFor(() => A.c.lastSeq('one') === o + 1 && A.c.lastSeq('two') === o + 1, 'A at 1 in both');
    A.c.close();
    for (let i = 0; i < 6; i++) await B.c.send('one', `one-${i}`);
    await B.c.send('two', 'two-1');
    await s.retention.runOnce();
    await A.c.connect();
    assert.deepEqual(one, [o + 1, gap('one', o + 2, o + 4), o + 5, o + 6, o + 7]);
    assert.deepEqual(two, [o + 1, o + 2]);
    const got: ChatMessage[] = chat(await A.c.history('one'));
    assert.deepEqual(got.map((m) => m.seq), [o + 7, o + 6, o + 5], 'what the page would reload is what was delivered');
  });
});
