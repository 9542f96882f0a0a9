/**
 * Failover on a real cluster: three Parley processes on Postgres and Redis. Clients given all
 * three URLs; one node is killed with SIGKILL mid-traffic. Its clients reconnect to the others,
 * resume, and end with every message exactly once, in order; unacked sends are re-sent and
 * stored once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cluster, OwnRedis, waitFor } from '@parley/testing/cluster';
import { ParleyClient, type ChatMessage } from '../src/index.js';
import { account, WS } from './helpers.js';

describe('failover across nodes (SDK)', { timeout: 120_000 }, () => {
  let redis: OwnRedis;
  let cluster: Cluster;
  before(async () => {
    redis = await OwnRedis.start();
    cluster = await Cluster.start({ nodes: 3, redisUrl: redis.url });
  });
  after(async () => {
    await cluster.stop();
    await redis.stop();
  });

  test('kill -9 of a node mid-traffic: its clients move to the others and miss nothing, doubled nothing', async () => {
    const urls = cluster.nodes.map((n) => n.url);
    const room = `failover${Date.now()}`;
    // Six clients, two first connected to each node (the URL list is rotated per client).
    const clients: { c: ParleyClient; got: ChatMessage[]; home: number }[] = [];
    for (let i = 0; i < 6; i++) {
      const home = i % 3;
      const a = await account({ url: urls[home] as string });
      const rotated = [...urls.slice(home), ...urls.slice(0, home)];
      const c = new ParleyClient({ url: rotated, token: a.token, username: a.name, password: a.password, rooms: [room], WebSocket: WS, reconnect: { baseMs: 100, capMs: 1000 } });
      const got: ChatMessage[] = [];
      c.on('new_message', (m) => {
        if (m.room === room) got.push(m);
      });
      await c.connect();
      clients.push({ c, got, home });
    }
    // Everyone sends steadily; node 2 dies in the middle.
    const acks: Promise<{ seq: number }>[] = [];
    const perClient = 30;
    const victim = cluster.nodes[2];
    assert.ok(victim);
    for (let r = 0; r < perClient; r++) {
      for (const [i, { c }] of clients.entries()) acks.push(c.send(room, `c${i}-${r}`));
      if (r === perClient / 3) await victim.kill('SIGKILL');
      await new Promise((res) => setTimeout(res, 40));
    }
    const settled = await Promise.all(acks);
    const total = perClient * clients.length;
    // Every send was acked once with a distinct seq: nothing lost, nothing stored twice.
    const seqs = settled.map((a) => a.seq).sort((x, y) => x - y);
    // The room's stream begins with its events (room_created, one member_joined per join).
    const base = (seqs[0] ?? 1) - 1;
    assert.equal(base, clients.length);
    assert.deepEqual(seqs, Array.from({ length: total }, (_, i) => base + i + 1));
    for (const { got } of clients) await waitFor(async () => got.length >= total, `${total} messages`, 20_000);
    await new Promise((res) => setTimeout(res, 300));
    for (const [i, { got, home }] of clients.entries()) {
      assert.deepEqual(
        got.map((m) => m.seq),
        Array.from({ length: total }, (_, k) => base + k + 1),
        `client ${i} (first on node ${home}): every seq once, in order`,
      );
    }
    // The killed node's clients did move.
    for (const { c, home } of clients) if (home === 2) assert.equal(c.state, 'open');
    // And every message text arrived once.
    const texts = new Set((clients[0]?.got ?? []).map((m) => m.message));
    assert.equal(texts.size, total);
    for (const { c } of clients) c.close();
  });
});
