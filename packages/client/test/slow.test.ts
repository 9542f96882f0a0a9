/**
 * Slow consumers: an SDK client that stops reading (its TCP socket paused, a real socket) while
 * another user sends enough to overflow its queue on the server (a small sendQueueMaxBytes) is
 * closed by the server: with 4000 when it reads again in time to get the close frame, with 1006
 * when the server had to destroy the socket first. Either way the SDK reconnects, resumes and
 * ends with every message exactly once, in order.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import type { ChatMessage } from '@parley/protocol';
import { account, client, fixture, connectionsOf, FAST, Recorder, sleep, startTestServer, waitFor } from './helpers.js';

const fx = fixture();

/** Messages of this many characters: a few thousand fill the kernel's socket buffers. */
const TEXT = 3000;
/** The most messages a test sends before the server must have closed the reader. */
const MAX_MESSAGES = 6000;

async function overflow(t: TestContext, how: 'close frame read' | 'socket destroyed'): Promise<void> {
  const s = await startTestServer({
    ...FAST,
    sendQueueMaxBytes: 64 * 1024,
    resumeMaxMessages: 100_000,
    // Only the send queue's bound closes the reader here, not the heartbeat.
    pingIntervalMs: 600_000,
    pongTimeoutMs: 600_000,
  });
  fx.adopt(s);
  const [a, b] = [await account(s), await account(s)];
  const rec = new Recorder();
  const A = client(s, { token: a.token, rooms: ['flood'], WebSocket: rec.WebSocket, reconnect: { baseMs: 20, capMs: 100 } });
  const B = client(s, { token: b.token, rooms: ['flood'] });
  fx.close(A.c, B.c);
  const got: ChatMessage[] = [];
  A.c.on('new_message', (m) => got.push(m));
  const gaps: unknown[] = [];
  A.c.on('gap', (g) => gaps.push(g));
  await A.c.connect();
  await B.c.connect();
  const conn = connectionsOf(s, a.name)[0];
  assert.ok(conn !== undefined);
  const o = await s.store.lastSeq('flood'); // the room events of the two joins: the messages come after them
  const tcp = rec.last.tcp;
  assert.ok(tcp !== undefined, 'the TCP socket under the SDK’s WebSocket');

  tcp.pause(); // A reads nothing more
  const body = 'x'.repeat(TEXT);
  let sent = 0;
  while (conn.open) {
    assert.ok(sent < MAX_MESSAGES, `the server closed the reader within ${MAX_MESSAGES} messages`);
    const batch: Promise<unknown>[] = [];
    for (let i = 0; i < 50; i++) batch.push(B.c.send('flood', `${++sent} ${body}`));
    await Promise.all(batch);
  }
  assert.equal(conn.closeReason, 'slow consumer');
  t.diagnostic(`closed as a slow consumer after ${sent} messages of ${TEXT} characters`);
  if (how === 'socket destroyed') {
    // The close frame waits behind what A does not read: after the grace period the server
    // destroys the socket, and what A reads then ends without a close frame.
    await waitFor(() => connectionsOf(s, a.name).length === 0, 'the server destroyed the socket', 20_000);
  }
  tcp.resume();
  // More messages while A reconnects and resumes: they come live, or held during its replay.
  for (let i = 0; i < 20; i++) await B.c.send('flood', `${++sent} after`);
  await waitFor(() => A.c.lastSeq('flood') === o + sent && A.c.state === 'open', `A at ${sent}`, 30_000);
  await sleep(100);
  const closedWith = A.states.find((st) => st.state === 'reconnecting')?.code;
  // Reading again within the server's 2 s grace shows 4000; a loaded machine may pass the grace first (1006). Either way A recovers.
  if (how === 'socket destroyed') assert.equal(closedWith, 1006, `A saw the close as ${closedWith}`);
  else assert.ok(closedWith === 4000 || closedWith === 1006, `A saw the close as ${closedWith}`);
  assert.equal(got.length, sent, `${sent} messages, each once`);
  assert.deepEqual(
    got.map((m) => m.seq),
    Array.from({ length: sent }, (_, i) => o + i + 1),
    'in order',
  );
  assert.ok(got.every((m, i) => m.message.startsWith(`${i + 1} `)), 'each message its own text');
  assert.deepEqual(gaps, []);
  assert.ok(rec.sockets.length >= 2, 'A reconnected');
  A.c.close();
  B.c.close();
}

describe('@parley/client slow consumer', { timeout: 120_000 }, () => {
  test('a reader that stops reading is closed with 4000 (it reads the close frame) and recovers everything by resume', (t) => overflow(t, 'close frame read'));
  test('a reader whose socket the server destroys (1006) recovers everything by resume', (t) => overflow(t, 'socket destroyed'));
});
