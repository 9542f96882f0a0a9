/**
 * The sequence gate (src/rooms.ts) on its own: given the frames a server sends, what reaches the
 * app, in which order, and when a room is replayed again or read from history. The tests against
 * a real server (gaps.test.ts) show the same on the wire; these pin the cases a server only
 * produces under faults (a hole above a replay, a replay that jumps over a `missing` range, a
 * database reset), one decision at a time.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ChatMessage } from '@parley/protocol';
import { type Backfill, Rooms } from '../src/rooms.js';
import type { GapEvent } from '../src/types.js';

type Out = number | GapEvent | { fill: number };

function gate(rooms = ['r']): { rooms: Rooms; out: Out[]; fills: number[] } {
  const out: Out[] = [];
  const fills: number[] = [];
  const r = new Rooms(rooms, {
    deliver: (m) => out.push(m.seq),
    gap: (g) => out.push(g),
    fill: (_room, after) => {
      fills.push(after);
      out.push({ fill: after });
    },
  });
  return { rooms: r, out, fills };
}

const msg = (seq: number, room = 'r'): ChatMessage => ({ room, seq, from: 'u', message: `m${seq}`, sent: '2024-01-01T00:00:00.000Z' });
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const gapOf = (from: number, to: number, seq = to): GapEvent => ({ room: 'r', from, to, seq });

describe('Rooms: the position only ever advances by one', () => {
  test('live messages in order are delivered; repeats are dropped', () => {
    const { rooms, out } = gate();
    rooms.joined({ room: 'r', seq: 2 });
    for (const s of [3, 4, 4, 2, 5]) rooms.receive(msg(s));
    assert.deepEqual(out, [3, 4, 5]);
    assert.equal(rooms.lastSeq('r'), 5);
  });

  test('a live hole is not delivered: the room is replayed from the position, once, and the replay brings everything in order', () => {
    const { rooms, out, fills } = gate();
    rooms.joined({ room: 'r', seq: 0 });
    rooms.receive(msg(1));
    rooms.receive(msg(3)); // 2 was lost
    rooms.receive(msg(4));
    assert.deepEqual(fills, [1], 'one fill, from the position');
    assert.deepEqual(out, [1, { fill: 1 }], 'nothing past the hole delivered');
    // The replay: 2, 3, 4 again (the held copies are not delivered twice), then 5 held live, then resumed.
    for (const s of [2, 3, 4, 5]) rooms.receive(msg(s));
    assert.equal(rooms.resumed({ room: 'r', seq: 5, recovered: true }), undefined, 'nothing to read from history');
    rooms.receive(msg(6));
    assert.deepEqual(out, [1, { fill: 1 }, 2, 3, 4, 5, 6]);
    assert.deepEqual(fills, [1]);
  });

  test('during the initial resume a jump is held until resumed: a replay around a missing range gets its gap where it falls', () => {
    const { rooms, out, fills } = gate();
    rooms.joined({ room: 'r', seq: 3 });
    rooms.replaying('r');
    // The server replays 4..5, cannot replay 6..9 (missing), replays 10..12.
    for (const s of [4, 5, 10, 11, 12]) rooms.receive(msg(s));
    assert.deepEqual(out, [4, 5], 'what is contiguous goes at once; the rest waits for resumed');
    assert.deepEqual(fills, [], 'no fill during a replay');
    const b = rooms.resumed({ room: 'r', seq: 12, recovered: false, missing: { from: 6, to: 9 } });
    assert.ok(b !== undefined, 'history is asked for the missing range');
    assert.deepEqual([b.after, b.top, b.upTo], [5, 9, 12]);
    rooms.backfilled(b, []); // history has none of them either
    assert.deepEqual(out, [4, 5, gapOf(6, 9), 10, 11, 12]);
    assert.equal(rooms.lastSeq('r'), 12);
  });

  test('an older server that replays nothing (recovered: false, no missing): what history has is delivered, the rest is one exact gap before it', () => {
    const { rooms, out } = gate();
    rooms.joined({ room: 'r', seq: 3 });
    rooms.replaying('r');
    rooms.receive(msg(21)); // a live message the server held, newer than its latest (20)
    const b = rooms.resumed({ room: 'r', seq: 21, recovered: false });
    assert.ok(b !== undefined);
    assert.deepEqual([b.after, b.top, b.upTo], [3, 20, 21]);
    rooms.receive(msg(22)); // live, while history is read: held
    rooms.receive(msg(16)); // a stray copy while backfilling: held, not delivered out of order
    assert.deepEqual(out, []);
    rooms.backfilled(b, [20, 19, 18, 17, 16, 15].map((s) => msg(s))); // retention kept 15..20
    assert.deepEqual(out, [gapOf(4, 14), 15, 16, 17, 18, 19, 20, 21, 22]);
  });

  test('history may also fill what the server did not replay: nothing is a gap that history still has', () => {
    const { rooms, out } = gate();
    rooms.joined({ room: 'r', seq: 0 });
    rooms.replaying('r');
    for (const s of [6, 7]) rooms.receive(msg(s)); // beyond resumeMaxMessages: only the newest replayed
    const b = rooms.resumed({ room: 'r', seq: 7, recovered: false, missing: { from: 1, to: 5 } });
    assert.ok(b !== undefined);
    rooms.backfilled(b, [5, 4, 3, 2, 1].map((s) => msg(s)));
    assert.deepEqual(out, [1, 2, 3, 4, 5, 6, 7]);
  });

  test('held messages above the resumed seq are live again: a hole among them starts a fill', () => {
    const { rooms, out, fills } = gate();
    rooms.joined({ room: 'r', seq: 0 });
    rooms.replaying('r');
    rooms.receive(msg(3));
    rooms.receive(msg(9)); // live, after a hole 6..8 that is not the replay's business
    const b = rooms.resumed({ room: 'r', seq: 5, recovered: false });
    assert.ok(b !== undefined);
    rooms.backfilled(b, [msg(5), msg(4)]);
    assert.deepEqual(out, [gapOf(1, 2), 3, 4, 5, { fill: 5 }], 'a gap only up to the resumed seq; above it a fill, not a gap');
    assert.deepEqual(fills, [5]);
  });

  test('the server is behind the position (a database reset): one gap says so, and the position moves back', () => {
    const { rooms, out } = gate();
    rooms.joined({ room: 'r', seq: 5 });
    rooms.replaying('r');
    assert.equal(rooms.resumed({ room: 'r', seq: 2, recovered: false }), undefined);
    assert.deepEqual(out, [gapOf(3, 5, 2)]);
    assert.equal(rooms.lastSeq('r'), 2);
    rooms.receive(msg(3));
    assert.deepEqual(out.at(-1), 3);
  });

  test('a backfill is stale once the connection drops or the room is left: its result changes nothing', () => {
    const { rooms, out } = gate(['r', 's']);
    rooms.joined({ room: 'r', seq: 1 });
    rooms.joined({ room: 's', seq: 1 });
    rooms.replaying('r');
    rooms.replaying('s');
    const br = rooms.resumed({ room: 'r', seq: 4, recovered: false });
    const bs = rooms.resumed({ room: 's', seq: 4, recovered: false });
    assert.ok(br !== undefined && bs !== undefined);
    rooms.unfollow('s');
    assert.equal(rooms.current(bs), false);
    rooms.disconnected();
    assert.equal(rooms.current(br), false);
    rooms.backfilled(br, [msg(2), msg(3), msg(4)]);
    assert.deepEqual(out, []);
    assert.equal(rooms.lastSeq('r'), 1, 'the next connection resumes from the same position');
  });

  test('a listener that leaves the room on a gap stops the delivery there', () => {
    const out: Out[] = [];
    const rooms: Rooms = new Rooms(['r'], {
      deliver: (m) => out.push(m.seq),
      gap: (g) => {
        out.push(g);
        rooms.unfollow('r');
      },
      fill: () => assert.fail('no fill'),
    });
    rooms.joined({ room: 'r', seq: 0 });
    rooms.replaying('r');
    rooms.receive(msg(4));
    const b = rooms.resumed({ room: 'r', seq: 5, recovered: false }) as Backfill;
    rooms.backfilled(b, [msg(5)]);
    assert.deepEqual(out, [gapOf(1, 3)]);
    assert.equal(rooms.lastSeq('r'), 0);
  });

  test('a long contiguous replay is delivered as it comes, not held', () => {
    const { rooms, out } = gate();
    rooms.joined({ room: 'r', seq: 0 });
    rooms.replaying('r');
    for (const s of range(1, 500)) rooms.receive(msg(s));
    assert.equal(out.length, 500);
    assert.equal(rooms.resumed({ room: 'r', seq: 500, recovered: true }), undefined);
    assert.deepEqual(out, range(1, 500));
  });
});
