/**
 * Sends at the edges of the server's guarantees, against real servers over real sockets:
 *
 * - the dedupe window (`welcome.limits.dedupeWindowMs`): a ref is never re-sent past it; a send
 *   unacked by then is rejected with `unconfirmed` (servers configured with the smallest window,
 *   stopped so the client is offline longer than it, restarted on the same port and data dir);
 * - `error` `shutting_down`: the send goes again on the next connection with the same ref, as
 *   often as it takes (not counted against the retries of `unavailable`), nothing more goes out
 *   on the connection being closed, and one the server does not close is replaced.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { type ChatMessage, ErrorCodes, type Ref } from '@parley/protocol';
import { freePort, startCli, tempDir } from '@parley/testing/cli';
import { ParleyClient, ParleyError } from '../src/index.js';
import { account, chat, client, connectionsOf, FAST, Recorder, type ServerConnection, sleep, startTestServer, waitFor, type TestServer } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const f of cleanups.reverse()) await f();
});

/** A server on a data dir of its own that can be stopped and started again on the same port. */
class Restartable {
  private constructor(
    readonly dataDir: string,
    readonly port: number,
    readonly extra: Parameters<typeof startTestServer>[0],
    public server: TestServer | undefined,
  ) {}

  static async start(extra: Parameters<typeof startTestServer>[0]): Promise<Restartable> {
    const dataDir = mkdtempSync(join(tmpdir(), 'parley-sends-'));
    const s = await startTestServer({ ...FAST, ...extra, dataDir });
    const r = new Restartable(dataDir, s.port, extra, s);
    cleanups.push(async () => {
      await r.stop();
      rmSync(dataDir, { recursive: true, force: true });
    });
    return r;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get live(): TestServer {
    if (this.server === undefined) throw new Error('the server is stopped');
    return this.server;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    await s?.close();
  }

  async restart(): Promise<TestServer> {
    this.server = await startTestServer({ ...FAST, ...this.extra, dataDir: this.dataDir, port: this.port });
    return this.server;
  }
}

function track<T extends { c: ParleyClient }>(x: T): T {
  cleanups.push(() => x.c.close());
  return x;
}

const opens = (states: { state: string }[]) => states.filter((s) => s.state === 'open').length;

/** The ack to this connection is never sent (the message is stored; the sender never hears of it). */
function loseAcks(conn: ServerConnection): void {
  const original = conn.send.bind(conn);
  conn.send = ((type, payload, ref) => (type === 'ack' ? true : original(type, payload, ref))) as typeof conn.send;
}

describe('@parley/client sends', { timeout: 60_000 }, () => {
  test('a send unacked past the dedupe window is rejected with unconfirmed and never sent again', async () => {
    const srv = await Restartable.start({ dedupeWindowMs: 1000 });
    const a = await account(srv);
    const rec = new Recorder();
    // Re-sends after ackTimeoutMs are out of the picture: only a reconnect would re-send.
    const A = track(client(srv, { token: a.token, WebSocket: rec.WebSocket, ackTimeoutMs: 600_000, reconnect: { baseMs: 50, capMs: 200 } }));
    await A.c.connect();
    const welcome = rec.last.received.find((f) => f.type === 'welcome');
    assert.equal(welcome?.type === 'welcome' ? welcome.payload.limits.dedupeWindowMs : undefined, 1000, 'the window is in the welcome');
    const conn = connectionsOf(srv.live, a.name)[0];
    assert.ok(conn !== undefined);
    loseAcks(conn);
    const pending = A.c.send('general', 'maybe stored');
    pending.catch(() => undefined);
    await waitFor(() => rec.sent('send_message').length === 1, 'the send went out');
    for (let i = 0; (await srv.live.store.lastSeq('general')) < 2; i++) {
      assert.ok(i < 2000, 'stored on the server');
      await sleep(5);
    }
    // Offline, past the window: rejected, not kept for the next connection.
    await srv.stop();
    await waitFor(() => A.c.state === 'reconnecting', 'reconnecting');
    const err = await pending.catch((e: unknown) => e);
    assert.ok(err instanceof ParleyError);
    assert.equal(err.code, 'unconfirmed');
    assert.match(err.message, /may or may not have been stored/);
    // Back online: the ref does not go out again.
    const s2 = await srv.restart();
    await waitFor(() => A.c.state === 'open' && opens(A.states) === 2, 'open again', 20_000);
    assert.equal(rec.sockets.length >= 2, true);
    assert.deepEqual(rec.sent('send_message').length, 1, 'sent once, never re-sent');
    const stored = chat(await s2.store.messagesAfter('general', 0, 10));
    assert.deepEqual(stored.map((m) => m.message), ['maybe stored'], 'stored once');
    // A send within the window is as before: acked.
    assert.equal((await A.c.send('general', 'fine')).seq, 3, 'after the room event of joining general and the first');
  });

  test('the window runs from the first transmission: a send queued while offline longer than the window still goes, once', async () => {
    const srv = await Restartable.start({ dedupeWindowMs: 1000 });
    const a = await account(srv);
    const rec = new Recorder();
    const A = track(client(srv, { token: a.token, WebSocket: rec.WebSocket, reconnect: { baseMs: 50, capMs: 200 } }));
    await A.c.connect();
    await srv.stop();
    await waitFor(() => A.c.state === 'reconnecting', 'reconnecting');
    const queued = A.c.send('general', 'typed offline');
    await sleep(1500); // longer than the window: it does not matter, the server never saw the ref
    const s2 = await srv.restart();
    assert.deepEqual(await queued, { room: 'general', seq: 2 }, 'after the room event of joining general');
    assert.equal(rec.sent('send_message').length, 1);
    assert.deepEqual(chat(await s2.store.messagesAfter('general', 0, 10)).map((m) => m.message), ['typed offline']);
  });

  test('shutting_down: the send goes again on the next connection with the same ref, however often, and is stored once', async () => {
    const srv = await Restartable.start({});
    const s = srv.live;
    const a = await account(s);
    const rec = new Recorder();
    const A = track(client(s, { token: a.token, WebSocket: rec.WebSocket, reconnect: { baseMs: 10, capMs: 40 } }));
    await A.c.connect();
    // The server as it shuts down (SIGTERM): the first 7 connections of A refuse every send with
    // shutting_down, then close with 1001 (the first one only when the test says so).
    const seen: ServerConnection[] = [];
    const handle = s.hub.handleFrame.bind(s.hub);
    s.hub.handleFrame = (c, data, isBinary) => {
      const f = JSON.parse(String(data)) as { type: string; ref?: Ref };
      if (c.user === a.name && !seen.includes(c)) seen.push(c);
      const index = seen.indexOf(c);
      if (f.type === 'send_message' && index >= 0 && index < 7) {
        c.send('error', f.ref === undefined ? { code: 'shutting_down', message: ErrorCodes.shutting_down } : { code: 'shutting_down', message: ErrorCodes.shutting_down, ref: f.ref }, f.ref);
        if (index > 0) setImmediate(() => c.close(1001, 'shutting down'));
        return;
      }
      handle(c, data, isBinary);
    };
    const one = A.c.send('general', 'one');
    await waitFor(() => rec.last.received.some((f) => f.type === 'error' && f.payload.code === 'shutting_down'), 'shutting_down received');
    // Nothing more goes out on a connection the server is closing: the next send waits for the next one.
    const sentBefore = rec.last.sent.length;
    const two = A.c.send('general', 'two');
    A.c.typing('general');
    assert.equal(rec.last.sent.length, sentBefore, 'nothing sent on the closing connection');
    connectionsOf(s, a.name)[0]?.close(1001, 'shutting down');

    assert.deepEqual(await one, { room: 'general', seq: 2 }, 'after the room event of joining general');
    assert.deepEqual(await two, { room: 'general', seq: 3 });
    const ones = rec.sent('send_message').filter((f) => (f.payload as { message: string }).message === 'one');
    assert.ok(ones.length >= 8, `refused 7 times (more than the 5 retries of unavailable), then stored: sent ${ones.length} times`);
    assert.equal(new Set(ones.map((f) => f.ref)).size, 1, 'always with the same ref');
    const closes = A.states.filter((st) => st.state === 'reconnecting').map((st) => st.code);
    assert.ok(closes.length >= 7 && closes.every((code) => code === 1001), `reconnected after each 1001: ${closes.join()}`);
    assert.deepEqual(chat(await s.store.messagesAfter('general', 0, 10)).map((m) => m.message), ['one', 'two'], 'each stored once');
    assert.equal(A.c.state, 'open');
  });

  test('SIGTERM of a real server mid-traffic: every send acked once and stored once; those refused with shutting_down went again with the same ref', async (t) => {
    const dataDir = tempDir();
    const port = await freePort();
    const args = ['--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir, '--rate-limit-per-sec', '5000', '--rate-limit-burst', '5000', '--user-rate-limit-per-sec', '0', '--shutdown-timeout-ms', '5000'];
    const first = await startCli(args);
    const senders = await Promise.all(
      Array.from({ length: 3 }, async () => {
        const acct = await account(first);
        const rec = new Recorder();
        const x = track(client(first, { token: acct.token, WebSocket: rec.WebSocket, reconnect: { baseMs: 50, capMs: 200 } }));
        await x.c.connect();
        return { ...x, rec };
      }),
    );
    const sends: Promise<{ seq: number }>[] = [];
    const texts: string[] = [];
    let n = 0;
    const timers = senders.map(({ c }, i) =>
      setInterval(() => {
        const text = `s${i}-${n++}`;
        texts.push(text);
        sends.push(c.send('general', text));
      }, 2),
    );
    let second: Awaited<ReturnType<typeof startCli>> | undefined;
    try {
      await waitFor(() => sends.length >= 150, '150 sends under way');
      assert.deepEqual(await first.stop('SIGTERM'), { code: 0, signal: null }, 'a clean exit');
    } finally {
      for (const timer of timers) clearInterval(timer);
    }
    try {
      second = await startCli(args);
      const acks = await Promise.all(sends);
      assert.equal(new Set(acks.map((a) => a.seq)).size, sends.length, 'each send its own seq');
      // What the store holds: every text once.
      const reader = senders[0]?.c;
      assert.ok(reader !== undefined);
      const stored: ChatMessage[] = [];
      for (let before: number | undefined; ; ) {
        const page = await reader.history('general', before === undefined ? { limit: 100 } : { before, limit: 100 });
        stored.push(...chat(page));
        if (page.length < 100) break;
        before = page.at(-1)?.seq;
      }
      assert.deepEqual(stored.map((m) => m.message).sort(), [...texts].sort(), 'every send stored once');
      for (const { states } of senders) assert.ok(states.some((st) => st.state === 'reconnecting' && st.code === 1001), 'closed with 1001');
      // A send refused with shutting_down went again, same ref, on a later connection, and was acked there.
      let refused = 0;
      for (const { rec } of senders) {
        rec.sockets.forEach((sock, i) => {
          for (const f of sock.received) {
            if (f.type !== 'error' || f.payload.code !== 'shutting_down') continue;
            refused++;
            const ref = String(f.ref ?? f.payload.ref);
            const later = rec.sockets.slice(i + 1);
            assert.ok(later.some((l) => l.sent.some((x) => x.type === 'send_message' && x.ref === ref)), `${ref} sent again`);
            assert.ok(later.some((l) => l.received.some((x) => x.type === 'ack' && x.payload.ref === ref)), `${ref} acked on a later connection`);
          }
        });
      }
      t.diagnostic(`${sends.length} sends; ${refused} refused with shutting_down and sent again`);
    } finally {
      await second?.stop('SIGTERM');
    }
  });

  test('shutting_down and no close: the client replaces the connection itself', async () => {
    const srv = await Restartable.start({});
    const s = srv.live;
    const a = await account(s);
    const rec = new Recorder();
    const A = track(client(s, { token: a.token, WebSocket: rec.WebSocket, reconnect: { baseMs: 10, capMs: 40 } }));
    await A.c.connect();
    let refused = 0;
    const handle = s.hub.handleFrame.bind(s.hub);
    s.hub.handleFrame = (c, data, isBinary) => {
      const f = JSON.parse(String(data)) as { type: string; ref?: Ref };
      if (f.type === 'send_message' && f.ref !== undefined && refused++ === 0) {
        c.send('error', { code: 'shutting_down', message: ErrorCodes.shutting_down, ref: f.ref }, f.ref);
        return; // and never closes
      }
      handle(c, data, isBinary);
    };
    assert.deepEqual(await A.c.send('general', 'eventually'), { room: 'general', seq: 2 }, 'after the room event of joining general');
    assert.equal(rec.sockets.length, 2, 'on a new connection');
    assert.deepEqual(
      A.states.map((st) => st.state),
      ['connecting', 'open', 'reconnecting', 'open'],
    );
  });
});
