/**
 * Edge cases, black-box, on real sockets:
 * 1. WebSocket framing (RFC 6455): fragmented and malformed frames, written by hand on a raw TCP
 *    socket after a real upgrade; the close code is read from the server's own close frame.
 * 2. 10,000 room memberships, freed when their sockets close (cleanly or cut).
 * 3. HTTP/1.1 pipelining, HEAD and `Expect` on the HTTP API, as raw bytes on one socket.
 * 4. NFKC edge cases in user and room names (ligatures, U+FDFA, KELVIN SIGN, ß, İ, …).
 * Sections 1, 3 and 4 run against a real `parley` process, which must log nothing at error level.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as tcpConnect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { CloseCodes, HttpErrorCodes, normalizeUserName, roomKey } from '@parley/protocol';
import { freePort, type RunningServer, startCli, tempDir } from '@parley/testing/cli';
import { waitFor } from '@parley/testing/cluster';
import { account, api, startTestServer, TestClient, ticket, type TestServer, uniqueName, wsUrl } from '@parley/testing/helpers';
import { MemoryBroker } from '../src/broker/memory.js';
import { roomTopic } from '../src/hub/cluster.js';

// ---------------------------------------------------------------------------------------------
// Raw WebSocket frames

const OP = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

/** One client frame, masked with a random key unless `mask: false`. `rsv` is the 3 RSV bits (4 = RSV1). */
function frame(opcode: number, payload: Buffer | string = Buffer.alloc(0), opts: { fin?: boolean; rsv?: number; mask?: boolean } = {}): Buffer {
  const data = Buffer.from(payload);
  const mask = opts.mask ?? true;
  const b0 = ((opts.fin ?? true) ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | opcode;
  const m = mask ? 0x80 : 0;
  let head: Buffer;
  if (data.length < 126) head = Buffer.from([b0, m | data.length]);
  else if (data.length < 65_536) {
    head = Buffer.from([b0, m | 126, 0, 0]);
    head.writeUInt16BE(data.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = b0;
    head[1] = m | 127;
    head.writeBigUInt64BE(BigInt(data.length), 2);
  }
  if (!mask) return Buffer.concat([head, data]);
  const key = randomBytes(4);
  const masked = Buffer.from(data);
  for (let i = 0; i < masked.length; i++) masked[i] = (masked[i] as number) ^ (key[i % 4] as number);
  return Buffer.concat([head, key, masked]);
}

/** A close frame's payload: a 2-byte code and a reason. */
const closePayload = (code: number, reason: Buffer | string = ''): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, Buffer.from(reason)]);
};

interface ServerFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/** What the server said on a close frame: its code (undefined for an empty one) and reason. */
interface CloseSeen {
  code: number | undefined;
  reason: string;
  /** The raw payload length. */
  length: number;
}

/** A WebSocket opened by hand on a raw socket: frames are written as given, the server's are parsed. */
class RawWs {
  readonly frames: ServerFrame[] = [];
  ended = false;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: Socket) {}

  static async open(port: number, otp: string, resume = true, extraHeaders = ''): Promise<RawWs> {
    const socket = tcpConnect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    const raw = new RawWs(socket);
    await new Promise<void>((resolve, reject) => {
      let head = Buffer.alloc(0);
      const onData = (c: Buffer) => {
        head = Buffer.concat([head, c]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        const text = head.subarray(0, end).toString('latin1');
        if (!/^HTTP\/1\.1 101 /.test(text)) return reject(new Error(`upgrade refused: ${head.toString('latin1').slice(0, 300)}`));
        raw.attach(head.subarray(end + 4));
        resolve();
      };
      socket.on('data', onData);
      socket.once('close', () => reject(new Error('closed during the upgrade')));
      socket.write(
        `GET /ws?otp=${encodeURIComponent(otp)}${resume ? '&resume=1' : ''} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n${extraHeaders}\r\n`,
      );
    });
    return raw;
  }

  private attach(rest: Buffer): void {
    this.socket.on('data', (c: Buffer) => this.feed(c));
    this.socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    if (rest.length > 0) this.feed(rest);
  }

  private feed(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      const masked = ((b[1] as number) & 0x80) !== 0;
      let len = (b[1] as number) & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (masked) off += 4;
      if (b.length < off + len) break;
      const payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (b[off - 4 + (i % 4)] as number);
      this.frames.push({ fin: ((b[0] as number) & 0x80) !== 0, rsv: ((b[0] as number) >> 4) & 7, opcode: (b[0] as number) & 0x0f, masked, payload });
      this.buf = b.subarray(off + len);
    }
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Waits (bounded) until `check` returns a value. */
  async until<T>(check: () => T | undefined, what: string, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v !== undefined) return v;
      const left = deadline - Date.now();
      if (left <= 0 || this.ended) {
        throw new Error(`${this.ended ? 'socket closed' : `timed out after ${timeoutMs} ms`} waiting for ${what}; frames: ${JSON.stringify(this.frames.map((f) => [f.opcode, f.payload.toString('latin1').slice(0, 80)]))}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The text frames as parsed JSON. */
  events(): { type: string; payload: Record<string, unknown>; ref?: unknown }[] {
    return this.frames.filter((f) => f.opcode === OP.text).map((f) => JSON.parse(f.payload.toString('utf8')));
  }

  /** The first event of this type (and ref), once it arrived. */
  event(type: string, ref?: unknown, timeoutMs = 5000): Promise<{ type: string; payload: Record<string, unknown>; ref?: unknown }> {
    return this.until(() => this.events().find((e) => e.type === type && (ref === undefined || e.ref === ref)), `"${type}" (ref ${String(ref)})`, timeoutMs);
  }

  /** The server's close frame, once it arrived; throws if the socket ended without one. */
  async closeFrame(timeoutMs = 5000): Promise<CloseSeen> {
    const f = await this.until(() => this.frames.find((x) => x.opcode === OP.close), 'a close frame', timeoutMs);
    return { code: f.payload.length >= 2 ? f.payload.readUInt16BE(0) : undefined, reason: f.payload.subarray(2).toString('utf8'), length: f.payload.length };
  }

  /** Resolves once the server closed the TCP connection (bounded). */
  async socketEnded(timeoutMs = 5000): Promise<void> {
    if (this.ended) return;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the server did not close the TCP connection within ${timeoutMs} ms`)), timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  write(...frames: Buffer[]): void {
    this.socket.write(Buffer.concat(frames));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP responses

interface RawResponse {
  status: number;
  reason: string;
  headers: Record<string, string>;
  body: string;
}

/**
 * Every complete response in `raw`, in order. `noBody[i]` marks the i-th final response as one to
 * a HEAD (it has Content-Length but no body). 1xx responses are returned too (they have no body).
 */
function parseResponses(raw: Buffer, noBody: boolean[] = []): RawResponse[] {
  const out: RawResponse[] = [];
  let off = 0;
  let finals = 0;
  while (off < raw.length) {
    const end = raw.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const [line, ...lines] = raw.subarray(off, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) ?(.*)$/.exec(line as string);
    assert.ok(m, `a status line: ${JSON.stringify(line)}`);
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const status = Number(m[1]);
    off = end + 4;
    let body = '';
    if (status >= 200) {
      const len = noBody[finals++] === true ? 0 : Number(headers['content-length'] ?? 0);
      if (raw.length < off + len) break;
      body = raw.subarray(off, off + len).toString('utf8');
      off += len;
    }
    out.push({ status, reason: m[2] as string, headers, body });
  }
  return out;
}

/** Writes `bytes` on a fresh socket and collects everything until the server closes it or `until` holds. */
function exchange(port: number, bytes: string | Buffer, until: (got: Buffer) => boolean = () => false, timeoutMs = 5000): Promise<{ got: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ got, closed });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('data', (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (until(got)) finish(false);
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.write(bytes);
  });
}

const body = (o: unknown): string => JSON.stringify(o);
const post = (path: string, json: string, extra = ''): string =>
  `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\n${extra}\r\n${json}`;
const get = (path: string, method = 'GET'): string => `${method} ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;

/** No error-level line in the process's log so far. */
const errorLines = (srv: RunningServer): string[] =>
  srv.lines.filter((l) => l.level >= 50).map((l) => `${l.msg}: ${JSON.stringify(l.err ?? '').slice(0, 300)}`);

// ---------------------------------------------------------------------------------------------

describe('edge cases against a real parley process', () => {
  const MAX = 1024;
  let srv: RunningServer;
  let me: { name: string; token: string };
  const rawOpen = async (resume = true, headers = ''): Promise<RawWs> => RawWs.open(srv.port, await ticket(srv, me.token), resume, headers);
  const opened: RawWs[] = [];
  const open = async (resume = true): Promise<RawWs> => {
    const r = await rawOpen(resume);
    opened.push(r);
    await r.event('welcome');
    return r;
  };

  before(async () => {
    srv = await startCli(['--host', '127.0.0.1', '--port', String(await freePort()), '--data-dir', tempDir()], {
      PARLEY_MAX_MESSAGE_BYTES: String(MAX),
      PARLEY_TICKET_RATE_LIMIT_PER_MIN: '0',
      PARLEY_REGISTER_MAX_PER_ADDRESS: '100000',
      PARLEY_LOGIN_MAX_FAILURES: '1000',
      PARLEY_RATE_LIMIT_PER_SEC: '1000',
      PARLEY_RATE_LIMIT_BURST: '1000',
    });
    const a = await account(srv);
    me = { name: a.name, token: a.token };
  });
  after(async () => {
    for (const r of opened) r.destroy();
    await srv.stop();
  });

  // -------------------------------------------------------------------------------------------
  // 1. Frames

  describe('fragmented and malformed WebSocket frames', () => {
    test('a text message in three fragments (with a ping between them) is one message', async () => {
      const ws = await open();
      const text = body({ type: 'join', payload: { room: 'fragments' }, ref: 'frag-1' });
      ws.write(
        frame(OP.text, text.slice(0, 10), { fin: false }),
        frame(OP.continuation, text.slice(10, 20), { fin: false }),
        frame(OP.ping, 'mid'), // control frames may come between fragments (RFC 6455 §5.4)
        frame(OP.continuation, text.slice(20), { fin: true }),
      );
      const joined = await ws.event('joined', 'frag-1');
      assert.equal(joined.payload.room, 'fragments');
      const pong = await ws.until(() => ws.frames.find((f) => f.opcode === OP.pong), 'the pong');
      assert.equal(pong.payload.toString(), 'mid', 'the ping was answered with its payload');
      assert.ok(ws.frames.every((f) => !f.masked), 'server frames are never masked');
      ws.write(frame(OP.close, closePayload(1000)));
      assert.equal((await ws.closeFrame()).code, 1000);
    });

    test('UTF-8 split between fragments (inside a character) is valid, and the message is stored whole', async () => {
      const ws = await open();
      ws.write(frame(OP.text, body({ type: 'join', payload: { room: 'utf8split' }, ref: 'j' })));
      await ws.event('joined', 'j');
      const text = Buffer.from(body({ type: 'send_message', payload: { message: 'café ☕ 😀', room: 'utf8split' }, ref: 'utf8' }));
      const cut1 = text.indexOf(Buffer.from('é')) + 1; // between the two bytes of é
      const cut2 = text.indexOf(Buffer.from('😀')) + 2; // inside the 4 bytes of 😀
      ws.write(frame(OP.text, text.subarray(0, cut1), { fin: false }), frame(OP.continuation, text.subarray(cut1, cut2), { fin: false }), frame(OP.continuation, text.subarray(cut2)));
      await ws.event('ack', 'utf8');
      const m = await ws.until(() => ws.events().find((e) => e.type === 'new_message' && e.payload.room === 'utf8split'), 'the new_message');
      assert.equal(m.payload.message, 'café ☕ 😀');
    });

    test('a message of exactly maxMessageBytes, in fragments, is accepted', async () => {
      const ws = await open();
      ws.write(frame(OP.text, body({ type: 'join', payload: { room: 'exact' }, ref: 'j' })));
      await ws.event('joined', 'j');
      const shell = body({ type: 'send_message', payload: { message: '', room: 'exact' }, ref: 'exact' });
      const text = body({ type: 'send_message', payload: { message: 'x'.repeat(MAX - Buffer.byteLength(shell)), room: 'exact' }, ref: 'exact' });
      assert.equal(Buffer.byteLength(text), MAX);
      ws.write(frame(OP.text, text.slice(0, 500), { fin: false }), frame(OP.continuation, text.slice(500)));
      await ws.event('ack', 'exact');
    });

    /** Each case: the frames a client sends, and the close code the server must answer with. */
    const violations: { name: string; frames: () => Buffer[]; code: number }[] = [
      { name: 'a continuation frame with no message started', frames: () => [frame(OP.continuation, '{}')], code: 1002 },
      { name: 'a final continuation with no message started', frames: () => [frame(OP.continuation, '{}', { fin: true })], code: 1002 },
      { name: 'a new text frame in the middle of a fragmented message', frames: () => [frame(OP.text, '{"ty', { fin: false }), frame(OP.text, '{}')], code: 1002 },
      { name: 'a binary frame in the middle of a fragmented text message', frames: () => [frame(OP.text, '{"ty', { fin: false }), frame(OP.binary, 'x')], code: 1002 },
      { name: 'a fragmented ping (FIN=0)', frames: () => [frame(OP.ping, 'p', { fin: false })], code: 1002 },
      { name: 'a fragmented close (FIN=0)', frames: () => [frame(OP.close, closePayload(1000), { fin: false })], code: 1002 },
      { name: 'a ping with a 126-byte payload', frames: () => [frame(OP.ping, 'p'.repeat(126))], code: 1002 },
      { name: 'a pong with a 126-byte payload', frames: () => [frame(OP.pong, 'p'.repeat(126))], code: 1002 },
      { name: 'a close with a 126-byte payload', frames: () => [frame(OP.close, closePayload(1000, 'r'.repeat(124)))], code: 1002 },
      { name: 'RSV1 set on a text frame (no permessage-deflate negotiated)', frames: () => [frame(OP.text, '{}', { rsv: 4 })], code: 1002 },
      { name: 'RSV2 set on a text frame', frames: () => [frame(OP.text, '{}', { rsv: 2 })], code: 1002 },
      { name: 'RSV3 set on a text frame', frames: () => [frame(OP.text, '{}', { rsv: 1 })], code: 1002 },
      { name: 'RSV1 set on a ping', frames: () => [frame(OP.ping, '', { rsv: 4 })], code: 1002 },
      ...[3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf].map((op) => ({ name: `reserved opcode 0x${op.toString(16)}`, frames: () => [frame(op, 'x')], code: 1002 })),
      { name: 'an unmasked text frame', frames: () => [frame(OP.text, '{}', { mask: false })], code: 1002 },
      { name: 'an unmasked ping', frames: () => [frame(OP.ping, '', { mask: false })], code: 1002 },
      { name: 'invalid UTF-8 in a text frame (0xff)', frames: () => [frame(OP.text, Buffer.from([0x7b, 0xff, 0x7d]))], code: 1007 },
      { name: 'an overlong UTF-8 encoding (C0 AF)', frames: () => [frame(OP.text, Buffer.from([0xc0, 0xaf]))], code: 1007 },
      { name: 'a UTF-8-encoded surrogate (ED A0 80)', frames: () => [frame(OP.text, Buffer.from([0xed, 0xa0, 0x80]))], code: 1007 },
      { name: 'invalid UTF-8 split across fragments (C3 | 28)', frames: () => [frame(OP.text, Buffer.from([0x7b, 0xc3]), { fin: false }), frame(OP.continuation, Buffer.from([0x28, 0x7d]))], code: 1007 },
      { name: 'a text message cut inside a character (C3 at the end)', frames: () => [frame(OP.text, Buffer.from([0x7b, 0x7d, 0xc3]))], code: 1007 },
      { name: 'a frame over maxMessageBytes', frames: () => [frame(OP.text, 'x'.repeat(MAX + 1))], code: 1009 },
      { name: 'fragments each under maxMessageBytes, together over it', frames: () => [frame(OP.text, 'x'.repeat(600), { fin: false }), frame(OP.continuation, 'x'.repeat(MAX - 600 + 1))], code: 1009 },
      { name: 'a frame header announcing 2^63-1 bytes', frames: () => [Buffer.from([0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])], code: 1009 },
      { name: 'a binary frame', frames: () => [frame(OP.binary, Buffer.from([1, 2, 3]))], code: CloseCodes.unsupported_data },
      { name: 'a fragmented binary message', frames: () => [frame(OP.binary, 'a', { fin: false }), frame(OP.continuation, 'b')], code: CloseCodes.unsupported_data },
      ...[0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535].map((c) => ({ name: `a close frame with the invalid code ${c}`, frames: () => [frame(OP.close, closePayload(c))], code: 1002 })),
      { name: 'a close frame with a 1-byte payload', frames: () => [frame(OP.close, Buffer.from([0x03]))], code: 1002 },
      { name: 'a close frame whose reason is invalid UTF-8', frames: () => [frame(OP.close, closePayload(1000, Buffer.from([0x62, 0xff])))], code: 1007 },
    ];

    for (const v of violations) {
      test(`${v.name} → close ${v.code}`, async () => {
        const ws = await open();
        ws.write(...v.frames());
        const seen = await ws.closeFrame();
        assert.equal(seen.code, v.code, `close code for ${v.name} (reason ${JSON.stringify(seen.reason)})`);
        // The server has nothing more to say after its close: the connection ends (our close
        // frame completes the handshake, or the server cuts it after its grace period).
        ws.write(frame(OP.close, closePayload(1000)));
        await ws.socketEnded(5000);
      });
    }

    test('a client that breaks the rules and then never answers the close is cut by the server (bounded wait)', async () => {
      const cases: [Buffer, number][] = [
        [frame(OP.continuation, '{}'), 1002],
        [frame(OP.text, Buffer.from([0xff])), 1007],
        [frame(OP.text, 'x'.repeat(MAX + 1)), 1009],
        [frame(OP.binary, 'x'), 1003], // closed by Parley itself (Connection.close: 2 s grace)
      ];
      for (const [bytes, code] of cases) {
        const ws = await open();
        ws.write(bytes);
        assert.equal((await ws.closeFrame()).code, code);
        await ws.socketEnded(5000); // no close frame from us: the server ends it anyway
      }
    });

    for (const code of [1000, 1001, 1003, 1007, 1008, 1011, 1012, 1013, 1014, 3000, 4000, 4999]) {
      test(`a valid close with code ${code} is echoed with the same code and reason`, async () => {
        const ws = await open();
        ws.write(frame(OP.close, closePayload(code, 'bye ☕')));
        const seen = await ws.closeFrame();
        assert.deepEqual([seen.code, seen.reason], [code, 'bye ☕']);
        await ws.socketEnded();
      });
    }

    test('an empty close frame (no code) is echoed empty', async () => {
      const ws = await open();
      ws.write(frame(OP.close));
      const seen = await ws.closeFrame();
      assert.equal(seen.length, 0, 'no status code in the echo (1005 is never sent on the wire)');
      await ws.socketEnded();
    });

    test('frames after a client close are not served', async () => {
      const ws = await open();
      ws.write(frame(OP.close, closePayload(1000)), frame(OP.text, body({ type: 'join', payload: { room: 'late' }, ref: 'late' })));
      assert.equal((await ws.closeFrame()).code, 1000);
      await ws.socketEnded();
      assert.equal(ws.events().find((e) => e.ref === 'late'), undefined);
    });

    test('the process is alive, logged nothing at error level, and chats after all of the above', async () => {
      assert.equal(srv.proc.exitCode, null);
      assert.deepEqual(errorLines(srv), []);
      const ws = await open(false);
      await ws.event('joined');
      ws.write(frame(OP.text, body({ type: 'send_message', payload: { message: 'still here' }, ref: 'alive' })));
      await ws.event('ack', 'alive');
      // The documented close codes: every code seen above is listed in docs/protocol.md.
      ws.destroy();
    });
  });

  // -------------------------------------------------------------------------------------------
  // 3. HTTP: pipelining, HEAD, Expect

  describe('HTTP pipelining, HEAD and Expect', () => {
    let login: string;
    before(async () => {
      const name = uniqueName('pipe');
      assert.equal((await api(srv.url, '/register', { username: name, password: 'correct horse' })).status, 201);
      login = body({ username: name, password: 'correct horse' });
    });

    test('pipelined requests on one keep-alive socket are answered in order (a POST /login among GETs)', async () => {
      const reqs = [get('/healthz'), post('/login', login), get('/readyz'), post('/login', body({ username: 'nobody_here', password: 'wrong password' })), get('/nope'), get('/healthz')];
      const { got } = await exchange(srv.port, reqs.join(''), (b) => parseResponses(b).length >= reqs.length);
      const res = parseResponses(got);
      assert.deepEqual(
        res.map((r) => r.status),
        [200, 200, 200, 401, 404, 200],
        got.toString('latin1').slice(0, 2000),
      );
      assert.deepEqual(JSON.parse(res[0]!.body), { status: 'ok' });
      const l = JSON.parse(res[1]!.body) as { token: string; otp: string; user: { name: string } };
      assert.equal(typeof l.token, 'string');
      assert.equal(l.user.name, JSON.parse(login).username);
      assert.equal(JSON.parse(res[2]!.body).status, 'ready');
      assert.equal(JSON.parse(res[3]!.body).error.code, 'invalid_credentials');
      assert.equal(JSON.parse(res[4]!.body).error.code, 'not_found');
      for (const r of res) assert.notEqual(r.headers.connection, 'close', 'the socket is kept alive');
    });

    test('a malformed request in a pipeline: everything before it is answered, in order, then 400 bad_request and close', async () => {
      const reqs = [get('/healthz'), post('/login', login), get('/readyz'), 'GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n', get('/healthz')];
      const { got, closed } = await exchange(srv.port, reqs.join(''));
      assert.ok(closed, 'the server closed the connection');
      const res = parseResponses(got);
      assert.deepEqual(
        res.map((r) => r.status),
        [200, 200, 200, 400],
        got.toString('latin1').slice(0, 3000),
      );
      assert.equal(JSON.parse(res[1]!.body).user.name, JSON.parse(login).username);
      assert.equal(JSON.parse(res[3]!.body).error.code, 'bad_request');
      assert.equal(res[3]!.headers.connection, 'close');
    });

    for (const path of ['/', '/healthz', '/readyz', '/app.js', '/style.css', '/index.html']) {
      test(`HEAD ${path}: the status and headers of GET, Content-Length included, and no body`, async () => {
        const { got } = await exchange(srv.port, get(path, 'HEAD') + get(path) + get(path, 'HEAD'), (b) => parseResponses(b, [true, false, true]).length >= 3);
        const [head, full, head2] = parseResponses(got, [true, false, true]);
        assert.ok(head && full && head2, got.toString('latin1').slice(0, 500));
        assert.equal(full.status, 200);
        assert.equal(head.status, full.status);
        assert.equal(head.headers['content-length'], String(Buffer.byteLength(full.body)), 'HEAD has the Content-Length of the GET body');
        const strip = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).filter(([k]) => k !== 'date'));
        assert.deepEqual(strip(head.headers), strip(full.headers));
        // The second HEAD parsed right after the GET: the first HEAD had no body on the wire.
        assert.equal(head2.status, 200);
        assert.equal(parseResponses(got, [true, false, true]).length, 3);
        assert.ok(full.body.length > 0);
      });
    }

    test('HEAD on a missing file is 404 with the headers of the GET', async () => {
      const { got } = await exchange(srv.port, get('/missing.js', 'HEAD') + get('/missing.js'), (b) => parseResponses(b, [true]).length >= 2);
      const [head, full] = parseResponses(got, [true]);
      assert.equal(head?.status, 404);
      assert.equal(head?.headers['content-length'], String(Buffer.byteLength(full!.body)));
    });

    for (const path of ['/login', '/register', '/ticket', '/logout']) {
      test(`HEAD ${path} (POST only) → 405 with Allow: POST`, async () => {
        const { got } = await exchange(srv.port, get(path, 'HEAD') + get('/healthz'), (b) => parseResponses(b, [true]).length >= 2);
        const [head, next] = parseResponses(got, [true]);
        assert.equal(head?.status, 405);
        assert.equal(head?.headers.allow, 'POST');
        assert.match(head?.headers['content-type'] ?? '', /application\/json/);
        assert.equal(next?.status, 200, 'no body was sent after the HEAD response: the next response parses');
      });
    }

    test('Expect: 100-continue on POST /login: 100 Continue first, the answer once the body is sent', async () => {
      const socket = tcpConnect(srv.port, '127.0.0.1');
      let got = Buffer.alloc(0);
      const seen = (check: (b: Buffer) => boolean, what: string) =>
        new Promise<void>((resolve, reject) => {
          if (check(got)) return resolve();
          const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}: ${got.toString('latin1')}`)), 5000);
          const on = () => {
            if (!check(got)) return;
            clearTimeout(t);
            socket.off('data', on);
            resolve();
          };
          socket.on('data', on);
        });
      socket.on('data', (c: Buffer) => (got = Buffer.concat([got, c])));
      try {
        socket.write(`POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(login)}\r\nExpect: 100-continue\r\n\r\n`);
        await seen((b) => b.includes('\r\n\r\n'), 'the interim response');
        assert.match(got.toString('latin1'), /^HTTP\/1\.1 100 Continue\r\n\r\n$/, 'only a 100 Continue before the body is sent');
        socket.write(login);
        await seen((b) => parseResponses(b).length >= 2, 'the final response');
        const [cont, final] = parseResponses(got);
        assert.equal(cont?.status, 100);
        assert.equal(final?.status, 200);
        assert.equal(JSON.parse(final!.body).user.name, JSON.parse(login).username);
      } finally {
        socket.destroy();
      }
    });

    test('an unknown Expect (Expect: foo) → 417 expectation_failed with a JSON error body', async () => {
      for (const request of [post('/login', login, 'Expect: foo\r\n'), `GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n\r\n`]) {
        const { got } = await exchange(srv.port, request, (b) => parseResponses(b).length >= 1);
        const [r] = parseResponses(got);
        assert.equal(r?.status, 417, got.toString('latin1'));
        assert.match(r?.headers['content-type'] ?? '', /^application\/json/);
        assert.equal(r?.headers['x-content-type-options'], 'nosniff');
        const e = JSON.parse(r!.body) as { error: { code: string; message: string } };
        assert.equal(e.error.code, 'expectation_failed');
        assert.equal(HttpErrorCodes.expectation_failed[0], 417);
        assert.match(e.error.message, /100-continue/);
      }
    });

    for (const expect of ['100-continue', 'foo']) {
      test(`Expect: ${expect} on a WebSocket upgrade is ignored: 101 and a working socket (a GET has no body to wait for)`, async () => {
        const ws = await rawOpen(false, `Expect: ${expect}\r\n`);
        opened.push(ws);
        await ws.event('welcome');
        await ws.event('joined');
        ws.write(frame(OP.text, body({ type: 'send_message', payload: { message: 'after expect' }, ref: 'expect' })));
        await ws.event('ack', 'expect');
        ws.destroy();
      });
    }

    test('nothing above was logged at error level', () => {
      assert.deepEqual(errorLines(srv), []);
      assert.equal(srv.proc.exitCode, null);
    });
  });

  // -------------------------------------------------------------------------------------------
  // 4. NFKC

  describe('NFKC edge cases in user and room names', () => {
    const PW = 'correct horse';
    const reg = (username: string) => api(srv.url, '/register', { username, password: PW });
    const logIn = (username: string) => api(srv.url, '/login', { username, password: PW });
    let tag = 0;
    /** A fresh ASCII suffix, so runs never meet old accounts. */
    const fresh = () => `${process.pid % 10000}x${++tag}`;

    test('the ligature ﬁ (U+FB01) folds to fi: ﬁsh and fish are one account', async () => {
      const s = fresh();
      const lig = `\ufb01sh${s}`;
      const r = await reg(lig);
      assert.equal(r.status, 201);
      assert.equal(r.body.user.name, `fish${s}`, 'stored in NFKC form');
      const again = await reg(`fish${s}`);
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, 'username_taken');
      assert.equal((await reg(`FISH${s}`)).status, 409, 'and case-insensitively');
      for (const n of [lig, `fish${s}`, `FiSh${s}`, `\uff46\uff49\uff53\uff48${s}`]) {
        const l = await logIn(n);
        assert.equal(l.status, 200, `login as ${JSON.stringify(n)}`);
        assert.equal(l.body.user.name, `fish${s}`);
      }
    });

    test('KELVIN SIGN (U+212A) is K, fullwidth letters are ASCII', async () => {
      const s = fresh();
      const r = await reg(`\u212Aelvin${s}`);
      assert.equal(r.status, 201);
      assert.equal(r.body.user.name, `Kelvin${s}`);
      assert.equal((await reg(`kelvin${s}`)).status, 409);
      assert.equal((await logIn(`\uff4b\uff45\uff4c\uff56\uff49\uff4e${s}`)).status, 200);
    });

    test('names whose NFKC form is too long, or not of the pattern, are 400 invalid_username (never 500)', async () => {
      const cases: [string, string][] = [
        ['\ufdfa', 'U+FDFA alone (18 characters with spaces after NFKC)'],
        [`a${'\ufdfa'.repeat(2)}`, 'U+FDFA twice'],
        ['\ufb03'.repeat(11), '11 × ﬃ (33 ASCII letters after NFKC: one over 32)'],
        ['\u2474abc', '⑴ → (1): parentheses'],
        ['', 'empty'],
        ['\u00ad', 'a soft hyphen'],
        ['\u200b', 'a zero-width space'],
        ['\u0301', 'a lone combining mark'],
        ['e\u0301', 'e + combining acute → é'],
        ['A\u030a', 'A + combining ring → Å'],
        ['stra\u00dfe', 'ß'],
        ['\u0130stanbul', 'İ (U+0130)'],
        ['a b', 'a space'],
        ['x'.repeat(33), '33 ASCII letters'],
        ['\ud835\udc00'.repeat(33), '33 × 𝐀 (mathematical bold A: 66 code units)'],
        ['a\ud800', 'a lone surrogate'],
        ['x'.repeat(10_000), '10,000 letters (refused before normalizing)'],
      ];
      for (const [name, what] of cases) {
        for (const route of [reg, logIn]) {
          const r = await route(name);
          assert.equal(r.status, 400, `${what}: ${r.status} ${JSON.stringify(r.body)}`);
          assert.equal(r.body.error.code, 'invalid_username', what);
          assert.equal(r.body.error.message, HttpErrorCodes.invalid_username[1], `${what}: the normal message`);
        }
      }
      // A valid 32-letter name from 32 astral letters (64 code units) is still accepted.
      const s = fresh();
      const bold = [...`b${s}`.padEnd(32, 'z')].map((c) => (/[a-z]/.test(c) ? String.fromCodePoint(0x1d41a + c.charCodeAt(0) - 97) : c)).join('');
      const r = await reg(bold);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.user.name, `b${s}`.padEnd(32, 'z'));
    });

    test('a 1 MB user name is refused cheaply (413 payload_too_large), and a 16 KB one with 400', async () => {
      const huge = await reg('\ufdfa'.repeat(1_000_000));
      assert.equal(huge.status, 413);
      assert.equal(huge.body.error.code, 'payload_too_large');
      const t0 = performance.now();
      const big = await reg('\ufdfa'.repeat(5000)); // 15 KB of UTF-8, under the body limit
      assert.equal(big.status, 400);
      assert.equal(big.body.error.code, 'invalid_username');
      // Not a timing assertion on the server's speed: the bound is in normalizeUserName itself.
      assert.ok(performance.now() - t0 < 5000);
      assert.equal(normalizeUserName('\ufdfa'.repeat(5000)), undefined);
    });

    test('room names: NFKC, then the pattern, then lower case; one room per name, refusals are invalid_room', async () => {
      const c = new TestClient(wsUrl(srv, await ticket(srv, me.token)));
      await c.opened;
      await c.next('welcome');
      await c.next('joined');
      let ref = 0;
      const join = async (room: string) => {
        const r = `n${++ref}`;
        c.send({ type: 'join', payload: { room }, ref: r });
        const reply = await Promise.race([c.next('joined', (p, f) => f.ref === r), c.next('error', (p) => p.ref === r)]);
        return reply as { room?: string; code?: string; message?: string };
      };
      const same: [string, string][] = [
        ['\ufb01sh', 'fish'],
        ['FISH', 'fish'],
        ['\uff26\uff29\uff33\uff28', 'fish'],
        ['\u212Aelvin', 'kelvin'],
        ['KELVIN', 'kelvin'],
        ['STRASSE', 'strasse'],
        ['\u2168', 'ix'], // ROMAN NUMERAL NINE → IX → ix
        ['\u33cf', 'kt'], // SQUARE KT
      ];
      for (const [raw, key] of same) {
        assert.equal(roomKey(raw), key);
        const r = await join(raw);
        assert.equal(r.room, key, `${JSON.stringify(raw)} joins ${key}: ${JSON.stringify(r)}`);
      }
      const refused = ['stra\u00dfe', '\u1e9e', '\u0130stanbul', 'i\u0307', '\u0131', '\ufdfa', '\ufdfa'.repeat(4), 'e\u0301', '\u0301', '', '\u00ad', 'a b', '\u2474', 'x'.repeat(65), '\ufb03'.repeat(22), 'x'.repeat(900), '$control'];
      for (const raw of refused) {
        assert.equal(roomKey(raw), undefined, JSON.stringify(raw));
        const r = await join(raw);
        assert.equal(r.code, 'invalid_room', `${JSON.stringify(raw).slice(0, 40)}: ${JSON.stringify(r).slice(0, 200)}`);
      }
      // change_room and send_message go through the same key.
      c.send({ type: 'change_room', payload: { name: '\ufb01le' }, ref: 'cr' });
      assert.equal((await c.next('room_changed', (p, f) => f.ref === 'cr')).name, 'file');
      c.send({ type: 'send_message', payload: { message: 'to the kelvin room', room: '\u212aELVIN' }, ref: 'sm' });
      const ack = await c.next('ack', (p) => p.ref === 'sm');
      assert.equal(ack.room, 'kelvin');
      c.send({ type: 'change_room', payload: { name: '\u0130' }, ref: 'cr2' });
      assert.equal((await c.next('error', (p) => p.ref === 'cr2')).code, 'invalid_room');
      c.send({ type: 'send_message', payload: { message: 'x', room: 'stra\u00dfe' }, ref: 'sm2' });
      assert.equal((await c.next('error', (p) => p.ref === 'sm2')).code, 'invalid_room');
      assert.equal(c.closed, undefined, 'the connection stays open through every refusal');
      c.close();
      await c.waitClose();
    });

    test('nothing above was logged at error level', () => {
      assert.deepEqual(errorLines(srv), []);
      assert.equal(srv.proc.exitCode, null);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Memberships

describe('10,000 room memberships are freed on close', () => {
  const CONNS = 20;
  const ROOMS_EACH = 500;
  const ROOMS = 1000; // each room has CONNS × ROOMS_EACH / ROOMS = 10 members
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ maxRoomsPerConnection: ROOMS, rateLimitPerSec: 100_000, rateLimitBurst: 100_000, ticketRateLimitPerMin: 0 });
  });
  after(() => server.stop());

  test('20 connections × 500 rooms (resume and join), closed cleanly or cut: every room, presence entry and subscription is gone', async () => {
    const rooms = Array.from({ length: ROOMS }, (_, i) => `m${i}`);
    const roomsOf = (i: number) => Array.from({ length: ROOMS_EACH }, (_, j) => rooms[(i * 50 + j) % ROOMS] as string);
    const clients: { client: TestClient; name: string }[] = [];
    for (let i = 0; i < CONNS; i++) {
      const a = await account(server);
      const client = new TestClient(`${wsUrl(server, a.otp)}&resume=1`);
      await client.opened;
      await client.next('welcome');
      const mine = roomsOf(i);
      if (i % 2 === 0) {
        // Half by one resume naming 500 rooms...
        client.send({ type: 'resume', payload: { rooms: Object.fromEntries(mine.map((r) => [r, 0])) }, ref: 'resume' });
        await client.waitCount('resumed', ROOMS_EACH, 30_000);
      } else {
        // ...half by 500 joins.
        for (const r of mine) client.send({ type: 'join', payload: { room: r } });
        await client.waitCount('joined', ROOMS_EACH, 30_000);
      }
      await client.waitCount('presence', ROOMS_EACH, 30_000);
      clients.push({ client, name: a.name });
    }
    let total = 0;
    for (const r of rooms) {
      assert.equal(server.hub.roomSize(r), 10, `room ${r} has its 10 members`);
      total += server.hub.roomSize(r);
    }
    assert.equal(total, CONNS * ROOMS_EACH);
    assert.equal(server.hub.connections.size, CONNS);
    // The last joiner of a room saw everyone in it.
    const last = clients[CONNS - 1] as { client: TestClient };
    const p = last.client.all('presence').find((x) => x.room === roomsOf(CONNS - 1)[0]);
    assert.equal(p?.users.length, 10);
    const broker = server.broker;
    assert.ok(broker instanceof MemoryBroker, 'the test server runs the memory broker');
    assert.ok(rooms.every((r) => broker.subscriptions.has(roomTopic(r))), 'the memory broker is subscribed to every room');
    assert.equal(server.hub.roomCount, ROOMS, 'one room each on this node');

    // Half close cleanly, half are cut (no close frame).
    for (const [i, { client }] of clients.entries()) {
      if (i % 2 === 0) client.close();
      else client.ws.terminate();
    }
    await waitFor(async () => server.hub.connections.size === 0, 'every connection to be removed', 15_000);
    for (const r of rooms) assert.equal(server.hub.roomSize(r), 0, `room ${r} is empty`);
    for (const { name } of clients) assert.equal(server.hub.connectionsOf(name), 0);
    assert.equal(server.hub.connectionsFrom('127.0.0.1'), 0);
    await waitFor(async () => rooms.every((r) => !broker.subscriptions.has(roomTopic(r))), 'the broker to unsubscribe from every room', 5000);
    assert.equal(server.hub.roomCount, 0, 'no room is left open on this node');

    // Presence, black-box: one connection resumes all 1000 rooms and finds itself alone in each.
    const checker = await account(server);
    const c = new TestClient(`${wsUrl(server, checker.otp)}&resume=1`);
    await c.opened;
    await c.next('welcome');
    c.send({ type: 'resume', payload: { rooms: Object.fromEntries(rooms.map((r) => [r, 0])) } });
    const seen = await c.waitCount('presence', ROOMS, 30_000);
    const stale = seen.map((f) => f.payload as { room: string; users: string[] }).filter((x) => x.users.length !== 1 || x.users[0] !== checker.name);
    assert.deepEqual(stale.slice(0, 5), [], `${stale.length} rooms still list users who left`);
    assert.equal(c.all('user_left').length, 0, 'no departure was announced late');
    c.close();
    await waitFor(async () => server.hub.connections.size === 0, 'the checker to be removed', 5000);
    for (const r of rooms) assert.equal(server.hub.roomSize(r), 0);
  });
});

