/**
 * The hub's units where a black-box test cannot reach them: the room feed's ordering gate and
 * gap fill (against a real SQLite store), the replay buffer, the cluster link's codec and its
 * routing (over a real in-process broker bus).
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import type { TimelineItem } from '@parley/protocol';
import { MemoryBroker } from '../src/broker/memory.js';
import { CLUSTER_VERSION, ClusterLink, type ClusterMessage, CONTROL_TOPIC, decodeClusterMessage, encodeClusterMessage, roomTopic } from '../src/hub/cluster.js';
import { Feed, type FeedSource } from '../src/hub/feed.js';
import { ReplayBuffer } from '../src/hub/replay.js';
import { SqliteStore } from '../src/store/sqlite.js';

/** A logger whose lines are kept (as parsed JSON) for the test to read. */
function capturingLogger() {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

async function withStore(fn: (store: SqliteStore) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'parley-feed-'));
  const store = new SqliteStore(join(dir, 'parley.db'));
  await store.init();
  try {
    await fn(store);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function append(store: SqliteStore, room: string, n: number): Promise<TimelineItem[]> {
  const before = await store.lastSeq(room);
  await store.appendMessages(Array.from({ length: n }, (_, i) => ({ room, from: 'ann', message: `m${i}`, sent: new Date(0).toISOString() })));
  return store.messagesAfter(room, before, n);
}

/** Resolves once `cond` holds (polled; bounded by a generous limit, never deciding the outcome by time). */
async function until(cond: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const seqs = (ms: TimelineItem[]): number[] => ms.map((m) => m.seq);

test('feed: holds until started, then delivers in seq order, each once', async () => {
  await withStore(async (store) => {
    const { log } = capturingLogger();
    const [m1, m2, m3] = await append(store, 'r', 3);
    const got: TimelineItem[] = [];
    const feed = new Feed('r', store, { deliver: (m) => got.push(m) }, log);
    feed.accept(m3 as TimelineItem); // before start: held
    assert.deepEqual(got, []);
    await feed.start(); // latest is 3: everything up to it counts as seen by joiners
    assert.equal(feed.delivered, 3);
    assert.deepEqual(got, [], 'a message at or below the latest seq at start is not delivered again');
    const [m4, m5, m6] = await append(store, 'r', 3);
    feed.accept(m5 as TimelineItem);
    assert.deepEqual(got, [], 'an early message waits');
    assert.equal(feed.waiting, 1);
    feed.accept(m4 as TimelineItem);
    feed.accept(m4 as TimelineItem); // a duplicate (our own echo)
    feed.accept(m6 as TimelineItem);
    feed.accept(m2 as TimelineItem);
    assert.deepEqual(seqs(got), [4, 5, 6]);
    assert.equal(feed.waiting, 0);
    void m1;
    feed.close();
  });
});

test('feed: a missing seq is read from the store (gap fill), in order', async () => {
  await withStore(async (store) => {
    const { log } = capturingLogger();
    const got: TimelineItem[] = [];
    const feed = new Feed('r', store, { deliver: (m) => got.push(m) }, log);
    await feed.start();
    const ms = await append(store, 'r', 8);
    // Only the last one arrives live (the broker lost the others).
    feed.accept(ms[7] as TimelineItem);
    await until(() => got.length === 8, 'the gap to be filled');
    assert.deepEqual(seqs(got), [1, 2, 3, 4, 5, 6, 7, 8]);
    // Live copies arriving late are not delivered again.
    for (const m of ms) feed.accept(m);
    assert.equal(got.length, 8);
    feed.close();
  });
});

test('feed: resync reads what was published while the broker was away, without a later message', async () => {
  await withStore(async (store) => {
    const { log } = capturingLogger();
    const got: TimelineItem[] = [];
    const feed = new Feed('r', store, { deliver: (m) => got.push(m) }, log);
    await feed.start();
    await append(store, 'r', 1200); // more than one fill page
    feed.resync();
    await until(() => got.length === 1200, 'the resync');
    assert.deepEqual(seqs(got), Array.from({ length: 1200 }, (_, i) => i + 1));
    feed.close();
  });
});

test('feed: a failed store read is logged and retried; a range the store no longer has is skipped', async () => {
  await withStore(async (store) => {
    const { log, lines } = capturingLogger();
    let failures = 1;
    let hidden = 0; // seqs at or below this are "pruned"
    const source: FeedSource = {
      lastSeq: (room) => store.lastSeq(room),
      messagesAfter: async (room, after, limit) => {
        if (failures > 0) {
          failures--;
          throw new Error('store down');
        }
        return (await store.messagesAfter(room, after, limit)).filter((m) => m.seq > hidden);
      },
    };
    const got: TimelineItem[] = [];
    const feed = new Feed('r', source, { deliver: (m) => got.push(m) }, log);
    await feed.start();
    const ms = await append(store, 'r', 4);
    feed.accept(ms[3] as TimelineItem);
    await until(() => got.length === 4, 'the fill after a failed read');
    assert.deepEqual(seqs(got), [1, 2, 3, 4]);
    assert.ok(lines.some((l) => l.msg.includes('to fill a gap')), 'the failed read was logged');
    // Seqs 5..9 are gone from the store; 10 arrives live: the feed goes on from it.
    const more = await append(store, 'r', 6);
    hidden = 9;
    feed.accept(more[5] as TimelineItem);
    await until(() => got.length === 5, 'the skip past a pruned range');
    assert.equal(got[4]?.seq, 10);
    assert.ok(lines.some((l) => l.msg.includes('not in the store')), 'the skip was logged');
    feed.close();
  });
});

/** The store, counting the reads a feed makes. */
function counting(store: SqliteStore, failLastSeq = 0): FeedSource & { reads: number; lastSeqCalls: number } {
  const source = {
    reads: 0,
    lastSeqCalls: 0,
    lastSeq: async (room: string) => {
      source.lastSeqCalls++;
      if (failLastSeq > 0) {
        failLastSeq--;
        throw new Error('store down');
      }
      return store.lastSeq(room);
    },
    messagesAfter: (room: string, after: number, limit: number) => {
      source.reads++;
      return store.messagesAfter(room, after, limit);
    },
  };
  return source;
}

test('feed: a gap is filled up to the latest seq in one read, not up to the first held message (D2)', async () => {
  await withStore(async (store) => {
    const { log } = capturingLogger();
    const source = counting(store);
    const got: TimelineItem[] = [];
    const filled: number[] = [];
    const feed = new Feed('r', source, { deliver: (m) => got.push(m), filled: (_why, n) => filled.push(n) }, log);
    await feed.start();
    const ms = await append(store, 'r', 300);
    // The broker brought only seq 2 (seq 1 is missing) and nothing after it: all 300 come in one read.
    feed.accept(ms[1] as TimelineItem);
    await until(() => got.length === 300, 'the fill');
    assert.deepEqual(seqs(got), Array.from({ length: 300 }, (_, i) => i + 1));
    assert.equal(source.reads, 1, 'one store read for the whole range');
    assert.deepEqual(filled, [300], 'one fill, reported with the messages it delivered');
    feed.close();
  });
});

test("feed: our own writer's message above a gap fills at once, and reached() resolves once it is delivered", async () => {
  await withStore(async (store) => {
    const { log } = capturingLogger();
    const got: TimelineItem[] = [];
    const feed = new Feed('r', store, { deliver: (m) => got.push(m) }, log);
    await feed.start();
    const ms = await append(store, 'r', 3); // 1 and 2 stored by another node, their publications not here yet
    assert.equal(feed.reached(0), undefined, 'a delivered seq needs no wait');
    feed.accept(ms[2] as TimelineItem, true);
    const wait = feed.reached(3);
    assert.ok(wait !== undefined, 'seq 3 is not delivered yet');
    await wait;
    assert.deepEqual(seqs(got), [1, 2, 3], 'when the ack may go, the message went first, in order');
    assert.equal(feed.reached(3), undefined);
    const pending = feed.reached(10);
    feed.close();
    await pending; // a closed feed releases its waiters
    feed.close();
  });
});

test('feed: catchUp delivers what no publication brought (a lost publication in a quiet room, D3)', async () => {
  await withStore(async (store) => {
    const { log } = capturingLogger();
    const got: TimelineItem[] = [];
    const reasons: string[] = [];
    const feed = new Feed('r', store, { deliver: (m) => got.push(m), filled: (why) => reasons.push(why) }, log);
    await feed.start();
    feed.catchUp(0);
    await append(store, 'r', 2);
    feed.catchUp(2); // the periodic check saw latest 2, nothing arrived
    await until(() => got.length === 2, 'the catch-up');
    assert.deepEqual(seqs(got), [1, 2]);
    assert.deepEqual(reasons, ['catch_up']);
    feed.close();
  });
});

test('feed: a failed read of the latest seq at open is retried; what arrived meanwhile is delivered in order', async () => {
  await withStore(async (store) => {
    const { log, lines } = capturingLogger();
    const source = counting(store, 2);
    const got: TimelineItem[] = [];
    const feed = new Feed('r', source, { deliver: (m) => got.push(m) }, log);
    await feed.start();
    assert.equal(feed.delivered, undefined, 'not started: the store failed');
    const ms = await append(store, 'r', 2);
    feed.accept(ms[0] as TimelineItem);
    feed.accept(ms[1] as TimelineItem);
    await until(() => feed.delivered !== undefined, 'the retried start');
    assert.ok(source.lastSeqCalls >= 3);
    assert.deepEqual(got, [], 'messages stored before the room opened here are history, not live');
    const [m3] = await append(store, 'r', 1);
    feed.accept(m3 as TimelineItem);
    assert.deepEqual(seqs(got), [3]);
    assert.equal(lines.filter((l) => l.msg.includes('latest seq')).length, 1, 'one warning per failure streak');
    feed.close();
  });
});

test('feed: a resync asked for while a fill runs runs again after it', async () => {
  await withStore(async (store) => {
    const { log } = capturingLogger();
    let release: (() => void) | undefined;
    const source: FeedSource = {
      lastSeq: (room) => store.lastSeq(room),
      messagesAfter: async (room, after, limit) => {
        const page = await store.messagesAfter(room, after, limit);
        if (release === undefined) await new Promise<void>((r) => (release = r)); // the first read hangs
        return page;
      },
    };
    const got: TimelineItem[] = [];
    const feed = new Feed('r', source, { deliver: (m) => got.push(m) }, log);
    await feed.start();
    await append(store, 'r', 2);
    feed.resync(); // reads 1..2, and hangs
    await until(() => release !== undefined, 'the first read');
    await append(store, 'r', 2); // 3..4 stored while it reads
    feed.resync(); // must not be dropped
    release?.();
    await until(() => got.length === 4, 'the second pass');
    assert.deepEqual(seqs(got), [1, 2, 3, 4]);
    feed.close();
  });
});

test('feed: nothing is delivered after close', async () => {
  await withStore(async (store) => {
    const { log } = capturingLogger();
    const got: TimelineItem[] = [];
    const feed = new Feed('r', store, { deliver: (m) => got.push(m) }, log);
    await feed.start();
    const ms = await append(store, 'r', 3);
    feed.accept(ms[2] as TimelineItem); // a gap is pending
    feed.close();
    feed.accept(ms[0] as TimelineItem);
    feed.resync();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(got, []);
    assert.equal(feed.waiting, 0, 'a closed feed holds nothing');
  });
});

test('replay buffer: holds while replaying, skips what the replay sent, bounds what it holds', () => {
  const b = new ReplayBuffer();
  const frame = (n: number): Buffer => Buffer.alloc(n, 1);
  assert.equal(b.offer('r', 1, frame(10), 0, 100), 'send', 'a room not replayed flows');
  b.begin('r');
  assert.equal(b.offer('r', 5, frame(10), 0, 100), 'held');
  assert.equal(b.offer('r', 6, frame(10), 0, 100), 'held');
  assert.equal(b.bytes, 20);
  assert.equal(b.offer('r', 7, frame(50), 31, 100), 'overflow', 'held bytes plus unsent bytes may not pass the queue bound');
  assert.equal(b.offer('other', 9, frame(10), 0, 100), 'send', 'other rooms are not held');
  const held = b.held('r');
  assert.deepEqual(
    held.map((h) => h.seq),
    [5, 6],
  );
  for (const h of held) b.release(h);
  assert.equal(b.bytes, 0);
  b.finish('r', 6);
  assert.equal(b.isReplaying('r'), false);
  assert.equal(b.offer('r', 5, frame(10), 0, 100), 'skip', 'a live copy the replay sent is skipped');
  assert.equal(b.offer('r', 6, frame(10), 0, 100), 'skip');
  assert.equal(b.offer('r', 7, frame(10), 0, 100), 'send');
  assert.equal(b.offer('r', 6, frame(10), 0, 100), 'send', 'past the floor, skipping ends');
  b.begin('x');
  b.offer('x', 1, frame(10), 0, 100);
  b.forget('x');
  assert.equal(b.bytes, 0, 'forgetting a room releases what it held');
  assert.equal(b.offer('x', 1, frame(10), 0, 100), 'send');
  b.begin('y');
  b.offer('y', 1, frame(10), 0, 100);
  b.drop();
  assert.equal(b.bytes, 0);
  assert.equal(b.held('y').length, 0, 'drop frees every held frame');
});

test('cluster codec: round trip, versions and malformed payloads', () => {
  const message: TimelineItem = { room: 'r', seq: 3, from: 'ann', message: 'hi', sent: new Date(0).toISOString() };
  for (const m of [
    { v: CLUSTER_VERSION, node: 'n1', type: 'message', message },
    { v: CLUSTER_VERSION, node: 'n1', type: 'frame', frame: '{"type":"typing"}' },
    { v: CLUSTER_VERSION, node: 'n1', type: 'frame', frame: '{}', exceptUser: 'ann' },
    { v: CLUSTER_VERSION, node: 'n1', type: 'revoke', session: 'abc' },
    { v: CLUSTER_VERSION, node: 'n1', type: 'message', message: { type: 'member_left', room: 'r', seq: 4, sent: new Date(0).toISOString(), user: 'bob', by: 'ann', reason: 'spam' } },
    { v: CLUSTER_VERSION, node: 'n1', type: 'message', message: { type: 'room_created', room: 'r', seq: 1, sent: new Date(0).toISOString(), by: 'ann', visibility: 'private', title: '', members: ['ann'] } },
    { v: CLUSTER_VERSION, node: 'n1', type: 'invited', user: 'bob', invited: { room: 'r', visibility: 'private', title: 'T', role: 'member', seq: 4, by: 'ann' } },
  ] satisfies ClusterMessage[]) {
    assert.deepEqual(decodeClusterMessage(encodeClusterMessage(m)), m);
  }
  const v = CLUSTER_VERSION;
  for (const bad of [
    '',
    'nope',
    '[]',
    'null',
    `{"v":${v + 1},"node":"n","type":"revoke","session":"s"}`,
    `{"v":${v - 1},"node":"n","type":"revoke","session":"s"}`,
    `{"v":${v},"type":"revoke","session":"s"}`,
    `{"v":${v},"node":"n","type":"message","message":{"room":"r"}}`,
    `{"v":${v},"node":"n","type":"message","message":{"type":"nuked","room":"r","seq":1,"sent":"x","user":"u"}}`,
    `{"v":${v},"node":"n","type":"message","message":{"type":"member_left","room":"r","seq":1,"sent":"x"}}`,
    `{"v":${v},"node":"n","type":"invited","user":"u","invited":{"room":"r"}}`,
    `{"v":${v},"node":"n","type":"frame","frame":1}`,
    `{"v":${v},"node":"n","type":"what"}`,
    '{"n":"x","k":"m"}',
  ]) {
    assert.equal(typeof decodeClusterMessage(bad), 'string', `refused: ${bad}`);
  }
});

test('cluster link: other nodes hear room traffic on the room topic and revocations on their own topic', async () => {
  const bus = new EventEmitter();
  const heard: { a: string[]; b: string[] } = { a: [], b: [] };
  const { log, lines } = capturingLogger();
  const make = async (name: 'a' | 'b') => {
    const broker = new MemoryBroker(bus);
    const link: ClusterLink = new ClusterLink(broker, log, {
      message: (m) => heard[name].push(`message ${m.room} ${m.seq}`),
      frame: (room, frame, except) => heard[name].push(`frame ${room} ${frame} ${except ?? '-'}`),
      revoke: (s) => heard[name].push(`revoke ${s}`),
      invited: (user, invited) => heard[name].push(`invited ${user} ${invited.room}`),
    });
    broker.onMessage = (topic, payload) => link.received(topic, payload);
    await broker.init();
    await link.listen();
    return { broker, link };
  };
  const a = await make('a');
  const b = await make('b');
  await b.link.joinRoom('r');
  a.link.message({ room: 'r', seq: 1, from: 'ann', message: 'x', sent: new Date(0).toISOString() });
  a.link.message({ room: 'elsewhere', seq: 1, from: 'ann', message: 'x', sent: new Date(0).toISOString() });
  a.link.frame('r', 'F', 'ann');
  a.link.revoke('s1');
  b.link.revoke('s2');
  // A message naming another room than its topic's, and a payload of another format, are dropped.
  await a.broker.publish(roomTopic('r'), encodeClusterMessage({ v: CLUSTER_VERSION, node: 'zz', type: 'message', message: { room: 'q', seq: 1, from: 'x', message: 'x', sent: 'x' } }));
  await a.broker.publish(roomTopic('r'), '{"n":"old","k":"m"}');
  await a.broker.publish(CONTROL_TOPIC, encodeClusterMessage({ v: CLUSTER_VERSION, node: 'zz', type: 'frame', frame: 'F' }));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(heard.b, ['message r 1', 'frame r F ann', 'revoke s1']);
  assert.deepEqual(heard.a, ['revoke s2'], 'a node never hears its own publications, nor rooms it did not join');
  assert.ok(lines.some((l) => l.msg === 'malformed cluster message'));
  b.link.leaveRoom('r');
  a.link.message({ room: 'r', seq: 2, from: 'ann', message: 'x', sent: new Date(0).toISOString() });
  await new Promise((r) => setImmediate(r));
  assert.equal(heard.b.length, 3, 'after leaving, the room is not heard');
  await a.broker.close();
  await b.broker.close();
});
