/**
 * No client can make the server hold unbounded memory. The server is the real `parley` process;
 * its memory is read from /proc/PID/status (VmRSS) and must stay within the bound stated in each
 * test, far below what the attack cost before it was bounded (in brackets).
 * - resume replays are paced by the socket: eight sockets that resume a room of 900 messages of
 *   24 KB and never read hold about one send queue each, and are closed as slow consumers;
 * - a replay that waits for its socket holds live messages only up to the send queue's bound;
 * - a small history request pulls at most MAX_HISTORY_BYTES;
 * - connections are capped per user and per address; typing is limited per user.
 */
import assert from 'node:assert/strict';
import { connect as tcpConnect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { MAX_HISTORY_BYTES } from '@parley/protocol';
import { freePort, type RunningServer, startCli, tempDir } from '@parley/testing/cli';
import { waitFor } from '@parley/testing/cluster';
import { dropSchema, freshSchema, PG_URL } from '@parley/testing/pg';
import { account, api, connect, rawExchange, rssOf, sleep, stalledSocket, statusOf, ticket, TestClient, tryUpgrade, wsUrl } from '@parley/testing/helpers';

const MiB = 1024 * 1024;
/** 4000 characters that JSON-encode to 6 bytes each: a 24 KB frame per message. */
const HEAVY = '\u0001'.repeat(4000);

/** Samples a process's RSS every 20 ms: `stop()` ends it and says how many MiB it grew at its peak. */
function watchRss(pid: number): { stop(): number } {
  const start = rssOf(pid);
  let peak = start;
  const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 20);
  return {
    stop: () => {
      clearInterval(sampler);
      peak = Math.max(peak, rssOf(pid));
      return (peak - start) / MiB;
    },
  };
}

/** The server's disconnect log lines with this reason. */
const disconnects = (srv: RunningServer, reason: string) => srv.lines.filter((l) => l.event === 'disconnect' && l.reason === reason);

for (const store of ['sqlite', 'postgres'] as const) {
  describe(`replays and history are bounded in memory (${store})`, () => {
    let srv: RunningServer;
    const schema = freshSchema();
    let pid: number;
    let heavy: { token: string; name: string; client: TestClient };
    const ROOM = 'heavy';
    const COUNT = 900;

    before(async () => {
      srv = await startCli(['--host', '127.0.0.1', '--port', String(await freePort()), '--data-dir', tempDir()], {
        PARLEY_RATE_LIMIT_PER_SEC: '100000',
        PARLEY_RATE_LIMIT_BURST: '100000',
        PARLEY_USER_RATE_LIMIT_PER_SEC: '0',
        // A replay that takes nothing in for 2 s is a slow consumer; heartbeats stay out of the way.
        PARLEY_PONG_TIMEOUT_MS: '2000',
        PARLEY_PING_INTERVAL_MS: '600000',
        PARLEY_LOG_LEVEL: 'info',
        ...(store === 'postgres' ? { PARLEY_STORE: 'postgres', PARLEY_POSTGRES_URL: PG_URL, PARLEY_POSTGRES_SCHEMA: schema } : {}),
      });
      pid = srv.proc.pid as number;
      const a = await account(srv);
      const client = await connect(srv, a.otp);
      client.send({ type: 'join', payload: { room: ROOM }, ref: 'j' });
      await client.next('joined', (p) => p.room === ROOM);
      // In batches: the sender gets every message back and must keep up with its own echo.
      for (let i = 0; i < COUNT; i += 20) {
        for (let k = i; k < i + 20; k++) client.send({ type: 'send_message', payload: { room: ROOM, message: HEAVY }, ref: `fill${k}` });
        await client.next('ack', (p) => p.ref === `fill${i + 19}`, 20_000);
        client.frames.length = 0;
      }
      heavy = { token: a.token, name: a.name, client };
    });
    after(async () => {
      await srv.stop();
      if (store === 'postgres') await dropSchema(schema);
    });

    test(`eight sockets resume ${COUNT} × 24 KB and never read: the server holds about a send queue each, and closes them with 4000 [+168 MB, never dropped]`, async () => {
      const rss = watchRss(pid);
      let grew = 0;
      const sockets: Socket[] = [];
      try {
        for (let i = 0; i < 8; i++) {
          const s = await stalledSocket(srv.port, `otp=${await ticket(srv, heavy.token)}&resume=1`);
          s.send({ type: 'resume', payload: { rooms: { [ROOM]: 0 } }, ref: `r${i}` });
          sockets.push(s.socket);
        }
        await waitFor(async () => disconnects(srv, 'slow consumer').length >= 8, 'all eight closed as slow consumers', 30_000);
      } finally {
        grew = rss.stop();
        for (const s of sockets) s.destroy();
      }
      assert.ok(grew < 40, `RSS grew ${grew.toFixed(1)} MiB at its peak (bound: 40 MiB for 8 sockets; replays total ${((8 * COUNT * 24_000) / MiB).toFixed(0)} MiB)`);
    });

    test('a replay waiting for its socket holds live messages only up to the send queue bound, then closes with 4000 [+123 MB in 45 s, still connected]', async () => {
      const before = disconnects(srv, 'slow consumer').length;
      const rss = watchRss(pid);
      let grew = 0;
      const s = await stalledSocket(srv.port, `otp=${await ticket(srv, heavy.token)}&resume=1`);
      try {
        s.send({ type: 'resume', payload: { rooms: { [ROOM]: 0 } }, ref: 'stalled' });
        // Live messages keep arriving while the replay waits.
        for (let i = 0; i < 400 && disconnects(srv, 'slow consumer').length === before; i++) {
          heavy.client.send({ type: 'send_message', payload: { room: ROOM, message: HEAVY }, ref: `live${i}` });
          if (i % 20 === 19) await sleep(5);
        }
        await waitFor(async () => disconnects(srv, 'slow consumer').length > before, 'the stalled socket closed as a slow consumer', 15_000);
      } finally {
        grew = rss.stop();
        s.socket.destroy();
      }
      assert.ok(grew < 32, `RSS grew ${grew.toFixed(1)} MiB (bound: 32 MiB)`);
    });

    test('50 sockets asking 39 history pages each in one read and never reading hold at most a send queue each [+445 MB, held]', async () => {
      const rss = watchRss(pid);
      let grew = 0;
      const sockets: Socket[] = [];
      try {
        for (let i = 0; i < 50; i++) {
          const s = await stalledSocket(srv.port, `otp=${await ticket(srv, heavy.token)}`);
          const asks = Array.from({ length: 39 }, (_, k) => ({ type: 'history', payload: { room: ROOM, limit: 100 }, ref: `h${i}.${k}` }));
          s.send({ type: 'join', payload: { room: ROOM }, ref: `j${i}` }, ...asks);
          sockets.push(s.socket);
        }
        // Every request is answered (a page, rate_limited past four in flight, or 4000 past
        // the queue): then the heavy client's own request comes back.
        await sleep(500);
        heavy.client.send({ type: 'history', payload: { room: ROOM, limit: 1 }, ref: 'after-burst' });
        await heavy.client.next('history', (p) => p.room === ROOM, 20_000);
      } finally {
        grew = rss.stop();
        for (const s of sockets) s.destroy();
      }
      assert.ok(grew < 64, `RSS grew ${grew.toFixed(1)} MiB at its peak (bound: 64 MiB for 50 sockets of a 1 MiB send queue; the pages asked for total ${((50 * 39 * MAX_HISTORY_BYTES) / MiB).toFixed(0)} MiB)`);
    });

    test('one small history request pulls at most MAX_HISTORY_BYTES; paging on with `before` gets the rest [2.3 MiB]', async () => {
      const c = heavy.client;
      const request = JSON.stringify({ type: 'history', payload: { room: ROOM, limit: 100 }, ref: 'h1' });
      assert.ok(request.length < 80, 'a request of about 70 bytes');
      const raw: string[] = [];
      c.ws.on('message', (d) => raw.push(String(d)));
      c.send(request);
      const page = await c.next('history', (p) => p.room === ROOM);
      const bytes = Buffer.byteLength(raw.find((r) => r.includes('"type":"history"')) ?? '');
      assert.ok(bytes <= MAX_HISTORY_BYTES + 1024, `the reply is ${bytes} bytes`);
      assert.ok(page.messages.length >= 1 && page.messages.length < 100, `${page.messages.length} messages of 24 KB fit`);
      const oldest = page.messages.at(-1)?.seq as number;
      c.send({ type: 'history', payload: { room: ROOM, limit: 100, before: oldest }, ref: 'h2' });
      const next = await c.next('history', (p) => p.room === ROOM);
      assert.equal(next.messages[0]?.seq, oldest - 1, 'the next page starts right below');
    });

    test('the server still serves a chat', async () => {
      heavy.client.send({ type: 'send_message', payload: { room: ROOM, message: 'still fine' }, ref: 'fine' });
      assert.ok((await heavy.client.next('ack', (p) => p.ref === 'fine')).seq > COUNT);
      assert.equal((await api(srv.url, '/healthz', undefined, { method: 'GET' })).status, 200);
    });
  });
}

describe('connections are capped per user and per address', () => {
  let srv: RunningServer;
  before(async () => {
    srv = await startCli(['--host', '127.0.0.1', '--port', String(await freePort()), '--data-dir', tempDir()], {
      PARLEY_MAX_CONNECTIONS_PER_USER: '3',
      PARLEY_MAX_CONNECTIONS_PER_ADDRESS: '25',
    });
  });
  after(() => srv.stop());

  test('a user may have maxConnectionsPerUser sockets open; one more is 429 too_many_connections; closing one frees a place', async () => {
    const a = await account(srv);
    const open = [await connect(srv, a.otp)];
    for (let i = 0; i < 2; i++) open.push(await connect(srv, await ticket(srv, a.token)));
    const refused = await tryUpgrade(wsUrl(srv, await ticket(srv, a.token)));
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error.code, 'too_many_connections');
    const other = await account(srv);
    const theirs = await connect(srv, other.otp);
    (open[0] as TestClient).close();
    await (open[0] as TestClient).waitClose();
    await waitFor(async () => (await tryUpgrade(wsUrl(srv, await ticket(srv, a.token)))).status === 101, 'a place is free again', 5000);
    for (const c of [...open, theirs]) c.close();
  });

  test('an address may hold maxConnectionsPerAddress TCP connections; the next is answered 429 and closed; another address is not affected [5,000 accepted]', async () => {
    await sleep(300); // the previous test's sockets are gone
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 25; i++) {
        const s = tcpConnect(srv.port, '127.0.0.1');
        s.on('error', () => undefined);
        await new Promise((r) => s.once('connect', r));
        held.push(s);
      }
      const answer = await rawExchange(srv.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.equal(statusOf(answer), 429, answer.slice(0, 200));
      assert.match(answer, /too_many_connections/);
      // 4,000 more attempts, 100 at a time, each left open by the client: every one is refused
      // and closed by the server, which holds none of them. Memory is read after the first
      // 1,000 (the heap has grown to its working size) and after the other 3,000.
      let refused = 0;
      const attempt = async (rounds: number) => {
        for (let round = 0; round < rounds; round++) {
          const answers = await Promise.all(Array.from({ length: 100 }, () => rawExchange(srv.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 5000)));
          refused += answers.filter((a) => statusOf(a) === 429).length;
        }
      };
      await attempt(10);
      const rss0 = rssOf(srv.proc.pid as number);
      await attempt(30);
      assert.equal(refused, 4000, 'every connection past the cap was refused');
      const grew = (rssOf(srv.proc.pid as number) - rss0) / MiB;
      assert.ok(grew < 32, `RSS grew ${grew.toFixed(1)} MiB over 3,000 refused connections (bound: 32 MiB)`);
      const elsewhere = await new Promise<string>((resolve, reject) => {
        const s = tcpConnect({ port: srv.port, host: '127.0.0.1', localAddress: '127.0.0.9' });
        let got = '';
        s.on('data', (c: Buffer) => (got += c.toString()));
        s.on('end', () => resolve(got));
        s.on('error', reject);
        s.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      });
      assert.equal(statusOf(elsewhere), 200, 'another address is served');
    } finally {
      for (const s of held) s.destroy();
    }
    await waitFor(async () => (await api(srv.url, '/healthz', undefined, { method: 'GET' })).status === 200, 'served again once they closed', 5000);
  });
});

describe('typing is limited per user, not per connection', () => {
  test('50 sockets of one user typing at once: the others get one notice [50 a second]', async () => {
    const srv = await startCli(['--host', '127.0.0.1', '--port', String(await freePort()), '--data-dir', tempDir()]);
    try {
      const typist = await account(srv);
      const sockets = [await connect(srv, typist.otp)];
      while (sockets.length < 50) sockets.push(await connect(srv, await ticket(srv, typist.token)));
      const watcher = await connect(srv, (await account(srv)).otp);
      // Each socket types, then asks something: its answer means its typing was handled.
      for (const [i, s] of sockets.entries()) {
        s.send({ type: 'typing', payload: { room: 'general' } });
        s.send({ type: 'join', payload: { room: 'general' }, ref: `t${i}` });
      }
      for (const s of sockets) await s.next('joined');
      const probe = sockets[0] as TestClient;
      probe.send({ type: 'send_message', payload: { message: 'probe' }, ref: 'probe' });
      await watcher.next('new_message', (m) => m.message === 'probe');
      assert.equal(watcher.all('typing').filter((t) => t.user === typist.name).length, 1);
      for (const s of [...sockets, watcher]) s.close();
    } finally {
      await srv.stop();
    }
  });
});
