/**
 * Test helpers: a real server on a random port with a real SQLite file in a temp dir, real
 * HTTP requests, and a real WebSocket client that queues frames so tests can await them.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import { connect as tcpConnect } from 'node:net';
import WebSocket from 'ws';
import { type ChatMessage, isRoomEvent, type Ref, type ServerEvents, type ServerEventType, type ServerFrame, type TimelineItem } from '@parley/protocol';
import { loadConfig, startServer, type ConfigKey, type ParleyServer } from '@parley/server';
import { dropSchema, freshSchema, PG_URL } from './pg.js';

export interface TestServer extends ParleyServer {
  dataDir: string;
  /** Closes the server and removes its data dir. */
  stop(): Promise<void>;
}

/**
 * The two store drivers as test-server overrides: SQLite in a temp dir, Postgres in a fresh
 * schema. Each `overrides()` makes a new one; its `cleanup` removes it.
 */
export function storeDrivers(): { name: string; overrides: () => Promise<{ o: Partial<Record<ConfigKey, unknown>>; cleanup: () => Promise<void> }> }[] {
  return [
    {
      name: 'sqlite',
      overrides: async () => {
        const dataDir = mkdtempSync(join(tmpdir(), 'parley-test-'));
        return { o: { dataDir }, cleanup: async () => rmSync(dataDir, { recursive: true, force: true }) };
      },
    },
    {
      name: 'postgres',
      overrides: async () => {
        const schema = freshSchema();
        return { o: { store: 'postgres', postgresUrl: PG_URL, postgresSchema: schema }, cleanup: () => dropSchema(schema) };
      },
    },
  ];
}

export async function startTestServer(overrides: Partial<Record<ConfigKey, unknown>> = {}): Promise<TestServer> {
  const dataDir = (overrides.dataDir as string | undefined) ?? mkdtempSync(join(tmpdir(), 'parley-test-'));
  // Tests register many users from 127.0.0.1: the sign-up throttle is lifted unless a test sets it.
  const config = loadConfig({ overrides: { host: '127.0.0.1', port: 0, logLevel: 'silent', dataDir, registerMaxPerAddress: 100_000, ...overrides } });
  const server = await startServer(config);
  return Object.assign(server, {
    dataDir,
    stop: async () => {
      await server.close();
      if (overrides.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    },
  });
}

export interface HttpResult<T = unknown> {
  status: number;
  body: T;
  headers: Headers;
}

export async function api<T = any>(base: string, path: string, body?: unknown, init: { token?: string; method?: string; headers?: Record<string, string>; raw?: string } = {}): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  if (body !== undefined || init.raw !== undefined) headers['content-type'] ??= 'application/json';
  if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`;
  const res = await fetch(base + path, { method: init.method ?? 'POST', headers, body: init.raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON (the page)
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}

let userCounter = 0;
/** A unique valid user name for this process. */
export const uniqueName = (prefix = 'u'): string => `${prefix}${process.pid}_${++userCounter}`;

export interface Account {
  name: string;
  password: string;
  token: string;
  otp: string;
}

/** Registers (if needed) and logs in; returns the token and a first ticket. */
export async function account(server: { url: string }, name = uniqueName(), password = 'correct horse'): Promise<Account> {
  const reg = await api(server.url, '/register', { username: name, password });
  if (reg.status !== 201 && reg.status !== 409) throw new Error(`register ${name}: ${reg.status} ${JSON.stringify(reg.body)}`);
  const login = await api<{ token: string; otp: string }>(server.url, '/login', { username: name, password });
  if (login.status !== 200) throw new Error(`login ${name}: ${login.status} ${JSON.stringify(login.body)}`);
  return { name, password, token: login.body.token, otp: login.body.otp };
}

export async function ticket(server: { url: string }, token: string): Promise<string> {
  const r = await api<{ otp: string }>(server.url, '/ticket', undefined, { token });
  if (r.status !== 200) throw new Error(`ticket: ${r.status}`);
  return r.body.otp;
}

export const wsUrl = (server: { url: string }, otp: string): string => `${server.url.replace(/^http/, 'ws')}/ws?otp=${encodeURIComponent(otp)}`;

/** A WebSocket client that records every frame and close, for awaiting in tests. */
export class TestClient {
  readonly frames: ServerFrame[] = [];
  readonly ws: WebSocket;
  closed: { code: number; reason: string } | undefined;
  private waiters: (() => void)[] = [];
  readonly opened: Promise<void>;

  constructor(url: string, options: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(url, options);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`unexpected response ${res.statusCode}`), { status: res.statusCode })));
      this.ws.once('error', reject);
    });
    this.opened.catch(() => undefined);
    this.ws.on('error', () => undefined);
    this.ws.on('message', (data, isBinary) => {
      this.frames.push(JSON.parse(isBinary ? '{}' : String(data)) as ServerFrame);
      this.wake();
    });
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: String(reason) };
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private async until<T>(check: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v !== undefined) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; frames: ${JSON.stringify(this.frames.slice(-5))}; closed: ${JSON.stringify(this.closed)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Sends a client frame (object) or a raw string/buffer. */
  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' || Buffer.isBuffer(frame) ? frame : JSON.stringify(frame));
  }

  /** Removes and returns the first frame of this type (optionally matching a predicate). */
  async next<K extends ServerEventType>(type: K, match: (p: ServerEvents[K], f: ServerFrame<K>) => boolean = () => true, timeoutMs = 5000): Promise<ServerEvents[K] & { envelopeRef?: Ref }> {
    const frame = await this.until(() => {
      const i = this.frames.findIndex((f) => f.type === type && match(f.payload as ServerEvents[K], f as ServerFrame<K>));
      if (i < 0) return undefined;
      return this.frames.splice(i, 1)[0] as ServerFrame<K>;
    }, `"${type}"`, timeoutMs);
    const out: ServerEvents[K] & { envelopeRef?: Ref } = { ...frame.payload };
    if (frame.ref !== undefined) out.envelopeRef = frame.ref;
    return out;
  }

  /** Waits for a frame of this type matching `match`, leaving it in place. */
  async seen<K extends ServerEventType>(type: K, match: (p: ServerEvents[K]) => boolean, timeoutMs = 5000): Promise<ServerEvents[K]> {
    const f = await this.until(() => this.frames.find((f) => f.type === type && match(f.payload as ServerEvents[K])), `"${type}" (seen)`, timeoutMs);
    return f.payload as ServerEvents[K];
  }

  /** Waits until `count` frames of `type` have arrived (without removing them). */
  async waitCount(type: ServerEventType, count: number, timeoutMs = 10_000): Promise<ServerFrame[]> {
    return this.until(() => {
      const got = this.frames.filter((f) => f.type === type);
      return got.length >= count ? got : undefined;
    }, `${count} × "${type}"`, timeoutMs);
  }

  all<K extends ServerEventType>(type: K): ServerEvents[K][] {
    return this.frames.filter((f) => f.type === type).map((f) => f.payload as ServerEvents[K]);
  }

  async waitClose(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    return this.until(() => this.closed, 'close', timeoutMs);
  }

  close(): void {
    this.ws.close();
  }
}

/** Connects with a ticket and waits for the welcome and the initial `joined general`. */
export async function connect(server: { url: string }, otp: string, options?: WebSocket.ClientOptions): Promise<TestClient> {
  const c = new TestClient(wsUrl(server, otp), options);
  await c.opened;
  await c.next('welcome');
  await c.next('joined', (p) => p.room === 'general');
  return c;
}

/** An account with an open, ready connection. */
export async function user(server: { url: string }, name?: string): Promise<Account & { client: TestClient }> {
  const a = await account(server, name);
  return { ...a, client: await connect(server, a.otp) };
}

/** Tries an upgrade and returns the HTTP status and JSON body it was refused with (or 101). */
export function tryUpgrade(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('open', () => {
      ws.close();
      resolve({ status: 101, body: undefined });
    });
    ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text.length > 0 ? JSON.parse(text) : undefined }));
    });
    ws.on('error', (err) => reject(err));
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The raw answer to `bytes`: everything the server wrote before it closed (or `timeoutMs` passed). */
export function rawExchange(port: number, bytes: string | Buffer, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(got);
    }, timeoutMs);
    socket.on('data', (c: Buffer) => {
      got += c.toString('latin1');
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      if (got !== '') resolve(got);
      else reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    socket.write(bytes);
  });
}

/** The status of the first response in a raw answer, or 0 when there is none. */
export const statusOf = (answer: string): number => Number(/^HTTP\/1\.[01] (\d{3}) /.exec(answer)?.[1] ?? 0);

/**
 * POSTs JSON from a given local address (127.0.0.2, 127.0.0.3, …: every 127.x address is this
 * machine), so tests can be several clients. Resolves with the status, the parsed body and headers.
 */
export function apiFrom<T = any>(localAddress: string, base: string, path: string, body?: unknown, token?: string): Promise<HttpResult<T>> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (data !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(data)) });
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    const req = httpRequest(base + path, { method: 'POST', localAddress, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON
        }
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v);
        resolve({ status: res.statusCode ?? 0, body: parsed as T, headers: h });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

/**
 * A WebSocket opened by hand on a raw TCP socket that, once the handshake is done, reads
 * nothing more (a client that stopped reading): `send` writes masked text frames; nothing is
 * ever taken from the kernel's receive buffer unless `resume()` is called.
 */
export async function stalledSocket(port: number, query: string): Promise<{ socket: import('node:net').Socket; send(frame: unknown, ...more: unknown[]): void; pong(): void }> {
  const socket = tcpConnect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    let head = '';
    const onData = (c: Buffer) => {
      head += c.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.pause();
      if (statusOf(head) === 101) resolve();
      else reject(new Error(`upgrade refused: ${head.slice(0, 200)}`));
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(`GET /ws?${query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
  });
  const encode = (frame: unknown): Buffer => {
    const payload = Buffer.from(JSON.stringify(frame));
    const n = payload.length;
    if (n >= 65_536) throw new RangeError('stalledSocket sends frames under 64 KiB');
    const head = n < 126 ? Buffer.from([0x81, 0x80 | n]) : Buffer.from([0x81, 0x80 | 126, n >> 8, n & 0xff]);
    // Masked with a zero key: the payload goes as it is (RFC 6455 requires the mask, not its value).
    return Buffer.concat([head, Buffer.alloc(4), payload]);
  };
  /** Sends one frame, or several in one write (so that they arrive in one read). */
  const send = (frame: unknown, ...more: unknown[]) => {
    socket.write(Buffer.concat([frame, ...more].map(encode)));
  };
  /** An unsolicited pong (a client may send one any time): alive, though not reading. */
  const pong = () => socket.write(Buffer.from([0x8a, 0x80, 0, 0, 0, 0]));
  return { socket, send, pong };
}

/** Resident memory of a process, from /proc/PID/status (VmRSS), in bytes. */
export function rssOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? NaN) * 1024;
}

/** The chat messages of a room's stream (history, messagesAfter), its room events left out. */
export const chat = (items: readonly TimelineItem[]): ChatMessage[] => items.filter((m): m is ChatMessage => !isRoomEvent(m));
