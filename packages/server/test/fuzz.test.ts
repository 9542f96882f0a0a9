/**
 * Fuzzing a live `parley` process with fast-check, for a bounded time: random and mutated client
 * events on a socket, and random and mutated HTTP requests on raw TCP. After every input:
 * - the process is alive;
 * - every frame the fuzzing socket got is a documented server event, every `error` carries a
 *   documented code, and a close has a documented close code (or 1006, a cut without a close);
 * - every HTTP answer is a response below 500, and an error body carries a documented code;
 * - a control pair of clients, in a room of their own, chats normally: a message sent is acked
 *   and received (checked every few inputs and at the end).
 * Nothing is logged at error level. A failure prints fast-check's seed and the shrunk input;
 * PARLEY_TEST_FUZZ_SEED=<seed> replays it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { CloseCodes, ErrorCodes, HttpErrorCodes } from '@parley/protocol';
import { freePort, type RunningServer, startCli, tempDir } from '@parley/testing/cli';
import { SERVER_EVENTS } from '@parley/testing/event-lists';
import { account, connect, rawExchange, statusOf, ticket, TestClient, wsUrl } from '@parley/testing/helpers';

const CLOSE_CODES = new Set<number>([...Object.values(CloseCodes), 1006]);
const TIME_LIMIT_MS = 25_000;
const seed = process.env.PARLEY_TEST_FUZZ_SEED === undefined ? undefined : Number(process.env.PARLEY_TEST_FUZZ_SEED);

// ---------------------------------------------------------------------------------------------
// Inputs

const TYPES = ['send_message', 'change_room', 'join', 'leave', 'history', 'resume', 'typing'];
const roomish = fc.oneof(fc.constantFrom('general', 'fuzz', 'Fuzz', 'ＦＵＺＺ', '', '$control', 'a'.repeat(65), '..', 'x y'), fc.string({ maxLength: 70 }), fc.string({ unit: 'binary', maxLength: 20 }));
const seqish = fc.oneof(fc.integer({ min: -5, max: 2000 }), fc.double(), fc.constantFrom(Number.MAX_SAFE_INTEGER, 2 ** 60, -0), fc.string({ maxLength: 5 }), fc.constant(null));
const textish = fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 100 }), fc.constantFrom('', '\u0000', 'x\ud800y', '\udfff', '😀', 'a'.repeat(4001)), fc.integer(), fc.constant(null));
const refish = fc.option(
  fc.oneof(
    { weight: 8, arbitrary: fc.oneof(fc.string({ minLength: 1, maxLength: 64 }), fc.integer()) },
    { weight: 1, arbitrary: fc.oneof(fc.string({ maxLength: 70 }), fc.double(), fc.boolean(), fc.constant(null), fc.object({ maxDepth: 1 }), fc.constantFrom('r\u0000', 'r\ud800')) },
  ),
  { nil: undefined },
);
/** Well-formed events on a few rooms: they reach the handlers and change state (joins, sends, resumes). */
const room = fc.constantFrom('general', 'fuzz', 'Fuzz', 'other', 'ＯＴＨＥＲ');
const wellFormed = fc.oneof(
  fc.record({ type: fc.constant('send_message'), payload: fc.record({ message: fc.string({ minLength: 1, maxLength: 100 }), room: fc.option(room, { nil: undefined }) }, { requiredKeys: ['message'] }), ref: refish }),
  fc.record({ type: fc.constantFrom('join', 'leave', 'typing'), payload: fc.record({ room }), ref: refish }),
  fc.record({ type: fc.constant('change_room'), payload: fc.record({ name: room }), ref: refish }),
  fc.record({ type: fc.constant('history'), payload: fc.record({ room, before: fc.option(fc.nat(50), { nil: undefined }), limit: fc.option(fc.integer({ min: 1, max: 100 }), { nil: undefined }) }), ref: refish }),
  fc.record({ type: fc.constant('resume'), payload: fc.record({ rooms: fc.dictionary(room, fc.nat(50), { maxKeys: 3 }) }), ref: refish }),
);

/** Payloads shaped like the real ones, with every field mutated. */
const payloadish = fc.oneof(
  fc.record({ message: textish, room: fc.option(roomish, { nil: undefined }) }, { requiredKeys: [] }),
  fc.record({ name: roomish }, { requiredKeys: [] }),
  fc.record({ room: roomish, before: fc.option(seqish, { nil: undefined }), limit: fc.option(seqish, { nil: undefined }) }, { requiredKeys: [] }),
  fc.record({ rooms: fc.oneof(fc.dictionary(roomish, seqish, { maxKeys: 8 }), fc.jsonValue({ maxDepth: 2 })) }),
  fc.jsonValue({ maxDepth: 3 }),
);

/** One frame a hostile client may send. */
const frameish = fc.oneof(
  { weight: 12, arbitrary: wellFormed.map((f) => JSON.stringify(f)) },
  { weight: 12, arbitrary: fc.record({ type: fc.oneof(fc.constantFrom(...TYPES), fc.string({ maxLength: 20 })), payload: payloadish, ref: refish }, { requiredKeys: ['type'] }).map((f) => JSON.stringify(f)) },
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
  { weight: 2, arbitrary: fc.string({ maxLength: 300 }) },
  { weight: 2, arbitrary: fc.constantFrom('{', '[]', 'null', '{"type":"send_message","payload":{"message":"x"},"ref":"' + 'r'.repeat(64) + '"}', '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]', '{"__proto__":{"x":1},"type":"join","payload":{"room":"general"}}') },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) }, // a binary frame: closed with 1003
  { weight: 1, arbitrary: fc.constant('x'.repeat(70_000)) }, // past maxMessageBytes: closed with 1009
);

const ROUTES = ['/', '/ws', '/login', '/register', '/ticket', '/logout', '/healthz', '/readyz', '/app.js', '/nope'];
/** One HTTP request a hostile client may send: always complete (headers end, exact Content-Length). */
const requestish = fc
  .record({
    method: fc.oneof({ weight: 8, arbitrary: fc.constantFrom('GET', 'POST', 'HEAD') }, { weight: 1, arbitrary: fc.constantFrom('PUT', 'DELETE', 'OPTIONS', 'PATCH', 'BREW') }, { weight: 1, arbitrary: fc.stringMatching(/^[A-Z]{1,8}$/) }),
    path: fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...ROUTES) },
      { weight: 2, arbitrary: fc.webPath() },
      { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map((p) => `/${p}`) },
      { weight: 1, arbitrary: fc.constantFrom('*', 'http://a:99999/', 'http://[/ws', '/%', '/%ff', '//x', '/ws?otp=%zz') },
    ),
    query: fc.option(fc.string({ maxLength: 30 }), { nil: undefined, freq: 3 }),
    type: fc.option(fc.oneof({ weight: 6, arbitrary: fc.constant('application/json') }, { weight: 1, arbitrary: fc.constantFrom('application/json; charset=utf-8', 'text/plain', 'application/jsonx', '') }), { nil: undefined, freq: 4 }),
    auth: fc.option(fc.oneof(fc.string({ maxLength: 60 }), fc.base64String({ minLength: 16, maxLength: 64 }).map((t) => `Bearer ${t}`)), { nil: undefined }),
    upgrade: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    body: fc.option(fc.oneof(fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), fc.record({ username: textish, password: textish }).map((v) => JSON.stringify(v)), fc.string({ maxLength: 100 })), { nil: undefined }),
  })
  .map((r) => {
    const target = r.query === undefined ? r.path : `${r.path}?${r.query}`;
    const body = Buffer.from(r.body ?? '');
    const headers = ['Host: x', 'Connection: close'];
    if (r.type !== undefined) headers.push(`Content-Type: ${r.type}`);
    if (r.auth !== undefined) headers.push(`Authorization: ${r.auth}`);
    if (r.upgrade) headers.push('Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==');
    if (body.length > 0) headers.push(`Content-Length: ${body.length}`);
    return Buffer.concat([Buffer.from(`${r.method} ${target} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`, 'utf8'), body]);
  });

// ---------------------------------------------------------------------------------------------

describe('fuzzing a live server', () => {
  let srv: RunningServer;
  let fuzzer: { token: string; client: TestClient; seen: number };
  let control: { a: TestClient; b: TestClient; n: number };

  const closes = new Map<number, number>();
  const reconnect = async () => {
    const code = fuzzer.client.closed?.code ?? 0;
    closes.set(code, (closes.get(code) ?? 0) + 1);
    fuzzer.client = new TestClient(wsUrl(srv, await ticket(srv, fuzzer.token)));
    await fuzzer.client.opened;
    fuzzer.seen = 0;
  };

  /** The frames and close of the fuzzing socket so far are all documented. */
  const checkFuzzer = () => {
    const c = fuzzer.client;
    for (const f of c.frames.slice(fuzzer.seen)) {
      assert.ok(Object.hasOwn(SERVER_EVENTS, f.type), `undocumented event ${JSON.stringify(f).slice(0, 200)}`);
      if (f.type === 'error') assert.ok(Object.hasOwn(ErrorCodes, (f.payload as { code: string }).code), `undocumented error code ${JSON.stringify(f.payload)}`);
      if (f.type === 'error') assert.notEqual((f.payload as { code: string }).code, 'internal', `an internal error: ${JSON.stringify(f.payload)}`);
    }
    fuzzer.seen = c.frames.length;
    if (c.closed !== undefined) assert.ok(CLOSE_CODES.has(c.closed.code), `undocumented close code ${c.closed.code}`);
  };

  /** The control pair still chats: a message is acked and received. */
  const chats = async () => {
    const ref = `ctl-${++control.n}`;
    control.a.send({ type: 'send_message', payload: { room: 'control', message: ref }, ref });
    await control.a.next('ack', (p) => p.ref === ref, 5000);
    await control.b.next('new_message', (m) => m.message === ref, 5000);
    control.a.frames.length = 0;
    control.b.frames.length = 0;
  };

  before(async () => {
    srv = await startCli(['--host', '127.0.0.1', '--port', String(await freePort()), '--data-dir', tempDir()], {
      // Fast enough that inputs reach the handlers instead of the rate limit (tested elsewhere).
      PARLEY_RATE_LIMIT_PER_SEC: '2000',
      PARLEY_RATE_LIMIT_BURST: '2000',
      PARLEY_USER_RATE_LIMIT_PER_SEC: '0',
      PARLEY_REGISTER_MAX_PER_ADDRESS: '100000',
      PARLEY_TICKET_RATE_LIMIT_PER_MIN: '0',
    });
    const f = await account(srv);
    fuzzer = { token: f.token, client: await connect(srv, f.otp), seen: 0 };
    const [a, b] = [await account(srv), await account(srv)];
    control = { a: await connect(srv, a.otp), b: await connect(srv, b.otp), n: 0 };
    for (const c of [control.a, control.b]) {
      c.send({ type: 'change_room', payload: { name: 'control' }, ref: 'cr' });
      await c.next('room_changed');
    }
    await chats();
  });
  after(async () => {
    for (const c of [fuzzer.client, control.a, control.b]) c.close();
    await srv.stop();
  });

  test('random and mutated client events: documented replies and closes only, and the chat goes on', async (t) => {
    let runs = 0;
    const seenCodes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(fc.array(frameish, { minLength: 1, maxLength: 4 }), async (frames) => {
        if (fuzzer.client.closed !== undefined) await reconnect();
        for (const f of frames) fuzzer.client.send(f);
        // A sentinel the server answers in order: once it is answered, every input before it was handled.
        const sentinel = `sentinel-${++runs}`;
        fuzzer.client.send({ type: 'history', payload: { room: 'general', limit: 1 }, ref: sentinel });
        const answered = () => fuzzer.client.closed !== undefined || fuzzer.client.frames.some((x) => x.ref === sentinel);
        for (let i = 0; i < 1000 && !answered(); i++) await new Promise((r) => setTimeout(r, 10));
        assert.ok(fuzzer.client.closed !== undefined || fuzzer.client.frames.some((x) => x.ref === sentinel), 'the server answered the sentinel, or closed with a code');
        for (const f of fuzzer.client.frames.slice(fuzzer.seen)) {
          const code = f.type === 'error' ? (f.payload as { code: string }).code : f.type;
          seenCodes.set(code, (seenCodes.get(code) ?? 0) + 1);
        }
        checkFuzzer();
        assert.equal(srv.proc.exitCode, null, 'the process is alive');
        if (runs % 25 === 0) await chats();
      }),
      { numRuns: 1500, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false, ...(seed === undefined ? {} : { seed }) },
    );
    t.diagnostic(`${runs} inputs; replies: ${JSON.stringify(Object.fromEntries(seenCodes))}; closes: ${JSON.stringify(Object.fromEntries(closes))}`);
    assert.ok(runs >= 50, `${runs} inputs tried`);
    await chats();
    assert.deepEqual(
      srv.lines.filter((l) => l.level >= 50).map((l) => l.msg),
      [],
      'nothing logged at error level',
    );
  });

  test('random and mutated HTTP requests: every answer is below 500 with a documented error code, and the chat goes on', async (t) => {
    let runs = 0;
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(requestish, async (request) => {
        runs++;
        const answer = await rawExchange(srv.port, request, 5000);
        const status = statusOf(answer);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        assert.ok(status >= 100 && status < 500, `${JSON.stringify(request.toString('latin1').slice(0, 200))} → ${status || JSON.stringify(answer.slice(0, 100))}`);
        if (status >= 400) {
          const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
          if (body.length > 0) {
            const code = (JSON.parse(body) as { error?: { code?: string } }).error?.code;
            assert.ok(code !== undefined && Object.hasOwn(HttpErrorCodes, code), `undocumented HTTP error: ${body.slice(0, 200)}`);
          }
        }
        assert.equal(srv.proc.exitCode, null, 'the process is alive');
        if (runs % 50 === 0) await chats();
      }),
      { numRuns: 3000, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false, ...(seed === undefined ? {} : { seed }) },
    );
    t.diagnostic(`${runs} requests; statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
    assert.ok(runs >= 100, `${runs} requests tried`);
    await chats();
    assert.deepEqual(
      srv.lines.filter((l) => l.level >= 50).map((l) => `${l.msg} ${JSON.stringify(l.err ?? '').slice(0, 200)}`),
      [],
      'nothing logged at error level',
    );
  });
});
