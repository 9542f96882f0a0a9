/**
 * D1–D3 of issue 15, each on its own, on real processes: two Parley nodes on Postgres and a
 * redis-server of their own, SDK clients (each pinned to one node), faults caused for real.
 *
 * - D1: a room first opened on a node during a Redis outage gets its broker subscription once
 *   Redis is back: its members there receive what other nodes send (a running node, and a node
 *   started during the outage).
 * - D2: during an outage every member still gets every message (read from the store), and the
 *   sender's own new_message comes before its ack.
 * - D3: a single lost publication in a quiet room reaches the other node with no further
 *   message (the periodic check against the store).
 *
 * Delivery is waited for with generous bounds: the 2 s targets are the fault benchmark's figures
 * (npm run bench:faults), not assertions here.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ParleyClient } from '@parley/client';
import { Cluster, OwnRedis, waitFor, type Node } from '@parley/testing/cluster';
import { losePublication } from '@parley/testing/faults';
import { account, type Account, Member, PASSWORD, Sends, sleep } from '@parley/testing/members';

const DELIVER_MS = 15_000;

describe('delivery under faults: D1, D2, D3', { timeout: 120_000 }, () => {
  let redis: OwnRedis;
  let cluster: Cluster;
  let a: Node;
  let b: Node;
  const members: Member[] = [];
  const sends = new Sends();
  /** The seqs of every acked send to `room`, in order (the room's stream also holds its creation and joins). */
  const ackedIn = (room: string): number[] => sends.all.filter((r) => r.room === room && r.seq !== undefined).map((r) => r.seq ?? 0).sort((x, y) => x - y);
  let n = 0;
  const tag = `${process.pid % 10000}x${Math.floor(Math.random() * 1e4)}`;

  const member = async (node: Node, acct?: Account): Promise<{ m: Member; user: string }> => {
    const name = `dl${++n}_${tag}`;
    const acc = acct ?? (await account(node.url, name));
    const m = new Member({
      name,
      client: (wire) => new ParleyClient({ url: [node.url], token: acc.token, username: acc.name, password: PASSWORD, rooms: [], WebSocket: wire.WebSocket, reconnect: { baseMs: 100, capMs: 1000 } }),
    });
    await m.sdk.connect();
    members.push(m);
    return { m, user: acc.name };
  };
  const unready = (node: Node) => waitFor(async () => (await fetch(`${node.url}/readyz`)).status === 503, `${node.url} not ready`, 15_000);
  /** Every node still running answers /readyz 200. */
  const ready = async () => {
    for (const node of cluster.nodes) if (node.proc.exitCode === null && node.proc.signalCode === null) await cluster.ready(node, 30_000);
  };
  const acked = async (recs: ReturnType<Sends['send']>[]): Promise<number> => {
    await waitFor(async () => recs.every((r) => r.state !== 'pending'), 'acks', 20_000);
    for (const r of recs) assert.equal(r.state, 'acked', `${r.text}: ${r.code}`);
    return Math.max(...recs.map((r) => r.seq ?? 0));
  };

  before(async () => {
    redis = await OwnRedis.start();
    cluster = await Cluster.start({ nodes: 2, redisUrl: redis.url });
    [a, b] = cluster.nodes as [Node, Node];
  });
  after(async () => {
    for (const m of members) m.close();
    await cluster?.stop();
    await redis?.stop();
  });

  test('D1: a room first opened on a running node during a Redis outage gets its subscription back: members there get what other nodes send', async () => {
    await ready();
    const room = `d1run${tag}`;
    const sender = await member(a);
    await sender.m.join(room);
    const { m: there } = await member(b);
    await redis.kill();
    try {
      await unready(b);
      await there.join(room); // first opened on B now, while its subscribe cannot succeed
    } finally {
      await redis.start();
    }
    await ready();
    const top = await acked([sends.send(sender.m, sender.user, room), sends.send(sender.m, sender.user, room), sends.send(sender.m, sender.user, room)]);
    await waitFor(async () => there.has(room, top), `B's member to get ${room}#${top} from A (it is at ${there.last(room)})`, DELIVER_MS);
    assert.deepEqual(there.rooms.get(room)?.direct.map((r) => r.seq), ackedIn(room));
    assert.equal(ackedIn(room).length, 3);
  });

  test('D1: a node started while Redis is down: a room opened there during the outage gets its subscription once Redis is back', async () => {
    await ready();
    const room = `d1new${tag}`;
    const sender = await member(a);
    await sender.m.join(room);
    // Made now: while Redis is down no one can log in (the throttle is on Redis).
    const accts = [await account(a.url, `d1c1_${tag}`), await account(a.url, `d1c2_${tag}`)];
    await redis.kill();
    let c: Node;
    const locals: Member[] = [];
    try {
      await unready(a);
      // Tickets in memory on this node: with Redis tickets no socket opens anywhere while Redis is down, by design.
      c = await cluster.add({ PARLEY_TICKETS: 'memory', PARLEY_RATE_LIMITER: 'memory', PARLEY_THROTTLE: 'memory' });
      const started = c;
      await cluster.listening(c, 30_000).catch(() => {
        throw new Error(`a node started while Redis is down did not come up; its output:\n${started.output().slice(-2500)}`);
      });
      for (const acct of accts) {
        const { m } = await member(c, acct);
        await m.join(room);
        locals.push(m);
      }
    } finally {
      await redis.start();
    }
    await ready();
    const top = await acked([sends.send(sender.m, sender.user, room), sends.send(sender.m, sender.user, room)]);
    await waitFor(async () => locals.every((m) => m.has(room, top)), `node C's members to get ${room}#${top} (at ${locals.map((m) => m.last(room)).join(', ')})`, DELIVER_MS);
    for (const m of locals) assert.deepEqual(m.rooms.get(room)?.direct.map((r) => r.seq), ackedIn(room));
    assert.equal(ackedIn(room).length, 2);
  });

  test('D2: during a Redis outage every member gets every message from the store, and each sender gets its own new_message before its ack', async () => {
    await ready();
    const room = `d2${tag}`;
    const senders: { m: Member; user: string }[] = [];
    for (const node of [a, b, a, b]) {
      const s = await member(node);
      await s.m.join(room);
      senders.push(s);
    }
    const { m: watcher } = await member(b);
    await watcher.join(room);
    await redis.kill();
    let took: number;
    try {
      for (const node of [a, b]) await unready(node);
      const recs: ReturnType<Sends['send']>[] = [];
      const start = Date.now();
      for (let k = 0; k < 25; k++) {
        for (const s of senders) recs.push(sends.send(s.m, s.user, room));
        await sleep(20);
      }
      const top = await acked(recs);
      assert.equal(ackedIn(room).length, 100);
      assert.equal(top, ackedIn(room).at(-1));
      const all = [...senders.map((s) => s.m), watcher];
      await waitFor(async () => all.every((m) => m.has(room, top)), `every member to get all ${top} while Redis is down (at ${all.map((m) => m.last(room)).join(', ')})`, 30_000);
      took = Date.now() - start;
    } finally {
      await redis.start();
    }
    console.log(`D2: 100 messages from 2 nodes during the outage reached all 5 members ${took} ms after the first send`);
    for (const m of [...senders.map((s) => s.m), watcher]) {
      assert.deepEqual(m.rooms.get(room)?.direct.map((r) => r.seq), ackedIn(room), `${m.name}: all once, in order`);
    }
    for (const s of senders) {
      const early = s.m.wire.ackOrderViolations();
      assert.deepEqual(early.map((f) => `${f.room}#${f.seq}`), [], `${s.m.name}: acks before their own new_message`);
    }
    await ready();
  });

  test('D3: a single lost publication in a quiet room reaches the other node with no further message sent', async () => {
    await ready();
    const room = `d3${tag}`;
    const q1 = await member(a);
    const q2 = await member(b);
    await q1.m.join(room);
    await q2.m.join(room);
    await ready();
    let ackedAt = 0;
    const lost = await losePublication(
      redis.url,
      a,
      `${cluster.prefix}room:${room}`,
      async () => {
        const rec = sends.send(q1.m, q1.user, room);
        const seq = await acked([rec]);
        ackedAt = Date.now();
        return { text: rec.text, seq };
      },
      (seq) => waitFor(async () => q2.m.has(room, seq), 'a publication that went out', DELIVER_MS),
    );
    console.log(`D3: publication of #${lost.seq} lost on try ${lost.tries}; A's command connection found by ${lost.by}`);
    await waitFor(async () => q2.m.has(room, lost.seq), `B's member to get the lost #${lost.seq} with no further message (at ${q2.m.last(room)})`, DELIVER_MS);
    // A figure, not an assertion (a loaded machine may take longer): the target is 2 s.
    console.log(`D3: the lost publication reached the other node ${Date.now() - ackedAt} ms after its ack (polled every 50 ms)`);
    assert.deepEqual(q2.m.rooms.get(room)?.direct.map((r) => r.seq), [lost.seq]);
    assert.equal(sends.all.filter((s) => s.room === room).length, 1, 'nothing else was sent to the room');
  });
});
