/**
 * Three Parley processes on one Postgres and one Redis, no sticky sessions: fan-out once and in
 * order on every node, tickets and logins across nodes, presence across nodes and after a
 * node's crash, and a Redis restart mid-traffic.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type ChatMessage, CloseCodes } from '@parley/protocol';
import { runCli } from '@parley/testing/cli';
import { Cluster, OwnRedis, waitFor } from '@parley/testing/cluster';
import { PG_URL } from '@parley/testing/pg';
import { account, api, connect, sleep, ticket, tryUpgrade, wsUrl, type TestClient } from '@parley/testing/helpers';

const inRoom = (c: TestClient, room: string): ChatMessage[] => c.all('new_message').filter((m) => m.room === room);

/** Every message seq after `base` (the room's events: its creation, the joins) up to base + n, once, in order. */
const assertExactly = (c: TestClient, room: string, n: number, who: string, base: number) => {
  assert.deepEqual(
    inRoom(c, room).map((m) => m.seq),
    Array.from({ length: n }, (_, i) => base + i + 1),
    `${who}: every seq ${base + 1}..${base + n} once, in order`,
  );
};

describe('three nodes on Redis and Postgres', () => {
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

  test('a ticket minted on one node opens a socket on another, once', async () => {
    const [a, b, c] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0], typeof cluster.nodes[0]];
    const acct = await account(a); // registered and logged in on A
    const client = await connect(b, acct.otp); // redeemed on B
    assert.equal((await tryUpgrade(wsUrl(c, acct.otp))).status, 401, 'used on B, refused on C');
    const fromC = await ticket(c, acct.token); // the token works on C (sessions are in Postgres)
    assert.equal((await tryUpgrade(wsUrl(a, fromC))).status, 101);
    client.close();
  });

  test('a logout on one node closes the session\'s sockets on every node and revokes its tickets everywhere', async () => {
    const [a, b, c] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0], typeof cluster.nodes[0]];
    const acct = await account(a);
    const onB = await connect(b, acct.otp);
    const other = await account(a); // another session of another user stays open
    const otherOnB = await connect(b, other.otp);
    const spare = await ticket(c, acct.token); // minted on C before the logout
    assert.equal((await api(a.url, '/logout', undefined, { token: acct.token })).status, 200);
    assert.equal((await onB.waitClose()).code, 4500, 'closed on B by a logout on A');
    assert.equal((await tryUpgrade(wsUrl(b, spare))).status, 401, 'the spare ticket no longer opens a socket');
    assert.equal(otherOnB.ws.readyState, 1, 'other sessions are untouched');
    otherOnB.close();
  });

  test('removing an account (parley user remove, offline) closes its sockets on every node with 4501', async () => {
    const [a, b, c] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0], typeof cluster.nodes[0]];
    const acct = await account(a);
    const sockets = [await connect(a, acct.otp), await connect(b, await ticket(b, acct.token)), await connect(c, await ticket(c, acct.token))];
    const spare = await ticket(a, acct.token);
    const rm = await runCli(['user', 'remove', acct.name], { env: { PARLEY_STORE: 'postgres', PARLEY_POSTGRES_URL: PG_URL, PARLEY_POSTGRES_SCHEMA: cluster.schema } });
    assert.equal(rm.code, 0, rm.stderr);
    for (const s of sockets) assert.equal((await s.waitClose(5000)).code, CloseCodes.user_removed);
    assert.equal((await tryUpgrade(wsUrl(b, spare))).status, 401, 'a ticket minted on A opens nothing on B');
  });

  test('failed logins are counted across nodes', async () => {
    const [a, b, c] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0], typeof cluster.nodes[0]];
    const acct = await account(a);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await api((cluster.nodes[i % 3] as typeof a).url, '/login', { username: acct.name, password: 'wrong-password' })).status);
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429], 'the 5 failures were spread over 3 nodes');
    assert.equal((await api(b.url, '/login', { username: acct.name, password: acct.password })).status, 429);
    assert.equal((await api(c.url, '/login', { username: acct.name, password: acct.password })).status, 429);
  });

  test('clients spread over the nodes in one room all receive every message once, in seq order', async () => {
    const room = `fan${Date.now()}`;
    const clients: TestClient[] = [];
    let base = 0;
    for (let i = 0; i < 6; i++) {
      const node = cluster.nodes[i % 3] as (typeof cluster.nodes)[0];
      const c = await connect(node, (await account(node)).otp);
      c.send({ type: 'join', payload: { room } });
      base = (await c.next('joined')).seq; // room_created, then one member_joined per join
      clients.push(c);
    }
    assert.equal(base, 6);
    const perClient = 40;
    for (let r = 0; r < perClient; r++) {
      for (const [i, c] of clients.entries()) c.send({ type: 'send_message', payload: { message: `c${i}-${r}`, room }, ref: `c${i}-${r}` });
      await sleep(2);
    }
    const total = perClient * clients.length;
    for (const c of clients) await c.waitCount('new_message', total, 20_000);
    await sleep(200);
    for (const [i, c] of clients.entries()) assertExactly(c, room, total, `client ${i} on node ${i % 3}`, base);
    // Everyone saw the same order.
    const order = inRoom(clients[0] as TestClient, room).map((m) => m.message);
    for (const c of clients) assert.deepEqual(inRoom(c, room).map((m) => m.message), order);
    for (const c of clients) c.close();
  });

  test('user_joined / user_left once per user with connections on two nodes', async () => {
    const [a, b, c] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0], typeof cluster.nodes[0]];
    const room = `pres${Date.now()}`;
    const watcher = await connect(c, (await account(c)).otp);
    watcher.send({ type: 'join', payload: { room } });
    await watcher.next('presence', (p) => p.room === room);
    const u = await account(a);
    const onA = await connect(a, u.otp);
    const onB = await connect(b, await ticket(b, u.token));
    onA.send({ type: 'join', payload: { room } });
    await onA.next('presence', (p) => p.room === room);
    onB.send({ type: 'join', payload: { room } });
    const seenByB = await onB.next('presence', (p) => p.room === room);
    assert.ok(seenByB.users.includes(u.name));
    await watcher.next('user_joined', (p) => p.room === room && p.user === u.name);
    onA.close();
    await sleep(300);
    assert.equal(watcher.all('user_joined').filter((p) => p.room === room && p.user === u.name).length, 0, 'the second connection is not a second join');
    assert.equal(watcher.all('user_left').filter((p) => p.room === room).length, 0, 'one connection is still there');
    onB.close();
    await watcher.next('user_left', (p) => p.room === room && p.user === u.name);
    // Typing crosses nodes too.
    const typist = await connect(a, (await account(a)).otp);
    typist.send({ type: 'join', payload: { room } });
    await typist.next('presence', (p) => p.room === room);
    typist.send({ type: 'typing', payload: { room } });
    await watcher.next('typing', (p) => p.room === room);
    typist.close();
    watcher.close();
  });

  test('Redis restarted mid-traffic: nodes keep serving local clients, report not ready, recover by themselves, and nobody misses a message', async () => {
    const [a, b] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
    const room = `redis${Date.now()}`;
    const ca = await connect(a, (await account(a)).otp);
    const cb = await connect(b, (await account(b)).otp);
    let base = 0;
    for (const c of [ca, cb]) {
      c.send({ type: 'join', payload: { room } });
      base = (await c.next('joined')).seq;
    }
    let sending = true;
    let sent = 0;
    const traffic = (async () => {
      while (sending) {
        for (const c of [ca, cb]) c.send({ type: 'send_message', payload: { message: `m${sent++}`, room } });
        await sleep(10);
      }
    })();
    await sleep(300);
    await redis.kill();
    await waitFor(async () => (await fetch(`${a.url}/readyz`)).status === 503, 'node A not ready without Redis');
    const ready = await api(a.url, '/readyz', undefined, { method: 'GET' });
    assert.equal(ready.body.broker, 'down');
    assert.equal(ready.body.store, 'up');
    // Local delivery goes on while Redis is down.
    const before = inRoom(ca, room).length;
    await sleep(500);
    assert.ok(inRoom(ca, room).length > before, 'node A still delivers to its own clients');
    await redis.start();
    await cluster.ready(a);
    await cluster.ready(b);
    await sleep(300);
    sending = false;
    await traffic;
    // Everything that was stored reaches everyone, in order, exactly once.
    const latest = (await new Promise<number>((resolve) => {
      ca.send({ type: 'history', payload: { room, limit: 1 } });
      void ca.next('history').then((h) => resolve(h.messages[0]?.seq ?? 0));
    })) as number;
    assert.ok(latest > 0);
    for (const c of [ca, cb]) await waitFor(async () => inRoom(c, room).at(-1)?.seq === latest, `all ${latest} messages`, 30_000); // a bound, not a measure: CI machines are slow
    assertExactly(ca, room, latest - base, 'client on A', base);
    assertExactly(cb, room, latest - base, 'client on B', base);
    assert.match(a.output(), /broker connection lost/);
    assert.match(a.output(), /broker connected/);
    ca.close();
    cb.close();
  });

  test('the per-user message rate limit is shared by nodes', async () => {
    const limited = { PARLEY_USER_RATE_LIMIT_PER_SEC: '5' };
    const d = await cluster.startNode(undefined, limited);
    const e = await cluster.startNode(undefined, limited);
    try {
      await cluster.ready(d);
      await cluster.ready(e);
      const u = await account(d);
      const onD = await connect(d, u.otp);
      const onE = await connect(e, await ticket(e, u.token));
      // Start just after a second boundary, so all 40 sends fall into one one-second window.
      await sleep(1000 - (Date.now() % 1000) + 30);
      for (let i = 0; i < 20; i++) {
        onD.send({ type: 'send_message', payload: { message: `d${i}` }, ref: `d${i}` });
        onE.send({ type: 'send_message', payload: { message: `e${i}` }, ref: `e${i}` });
      }
      await onD.waitCount('error', 1, 5000);
      await sleep(500);
      const acked = (c: TestClient) => c.all('ack').length;
      const refused = (c: TestClient) => c.all('error').filter((p) => p.code === 'rate_limited').length;
      assert.equal(acked(onD) + refused(onD), 20);
      assert.equal(acked(onE) + refused(onE), 20);
      // Shared: 5 for the user in this second, whichever node took them (separate counts would let 10 through).
      assert.equal(acked(onD) + acked(onE), 5);
      onD.close();
      onE.close();
    } finally {
      await d.kill('SIGKILL');
      await e.kill('SIGKILL');
    }
  });

  test('kill -9 of a node: its users drop out of presence within the TTL, with user_left to the room', async () => {
    const [a, , c] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0], typeof cluster.nodes[0]];
    const room = `crash${Date.now()}`;
    const victim = await account(c);
    const onC = await connect(c, victim.otp);
    onC.send({ type: 'join', payload: { room } });
    await onC.next('presence', (p) => p.room === room);
    const observer = await account(a);
    const look = async () => {
      const o = await connect(a, await ticket(a, observer.token));
      o.send({ type: 'join', payload: { room } });
      const p = await o.next('presence', (x) => x.room === room);
      o.close();
      return p.users;
    };
    assert.ok((await look()).includes(victim.name), 'online while its node runs');
    const watcher = await connect(a, await ticket(a, observer.token));
    watcher.send({ type: 'join', payload: { room } });
    await watcher.next('presence', (p) => p.room === room);
    await c.kill('SIGKILL');
    await onC.waitClose();
    // TTL 1500 ms, plus a margin for the lookups themselves.
    await waitFor(async () => !(await look()).includes(victim.name), 'the dead node’s user to vanish within the TTL', 1500 + 1000);
    assert.deepEqual(await watcher.next('user_left', (p) => p.room === room), { room, user: victim.name });
    await sleep(1000); // more refreshes: still one user_left
    assert.equal(watcher.all('user_left').filter((p) => p.room === room).length, 0, 'user_left once');
    watcher.close();
  });
});
