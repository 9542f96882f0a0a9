/**
 * Test helpers for the SDK: a real Parley server (@parley/testing's test server: SQLite in a temp
 * dir, random port), real accounts over HTTP, a fetch wrapper that counts (and can fail)
 * requests, and small waiters.
 */
import type { Socket } from 'node:net';
import { after } from 'node:test';
import WebSocket from 'ws';
import type { ServerFrame } from '@parley/protocol';
import type { ParleyServer } from '@parley/server';
import { chat, startTestServer, type TestServer } from '@parley/testing/helpers';
import { ParleyClient, type ClientOptions, type StateEvent, type WebSocketConstructor } from '../src/index.js';

export { chat, startTestServer, type TestServer };

/** The `ws` package as the SDK's WebSocket (Node 20 has no global one). */
export const WS: WebSocketConstructor = WebSocket;

/** One socket the SDK opened through a Recorder: what it sent and received, and its TCP socket. */
export interface RecordedSocket {
  ws: WebSocket;
  /** Frames the SDK sent on it, parsed. */
  sent: { type: string; ref?: string; payload: unknown }[];
  /** Frames the server sent on it, parsed, as they were read. */
  received: ServerFrame[];
  /** The TCP socket under it, once upgraded. */
  tcp: Socket | undefined;
}

/** A WebSocket constructor (the `ws` package) that records every socket the SDK opens with it. */
export class Recorder {
  readonly sockets: RecordedSocket[] = [];
  readonly WebSocket: WebSocketConstructor;

  constructor() {
    const sockets = this.sockets;
    this.WebSocket = class RecordingWebSocket extends WebSocket {
      private readonly record: RecordedSocket;
      constructor(url: string) {
        super(url);
        const record: RecordedSocket = { ws: this, sent: [], received: [], tcp: undefined };
        this.record = record;
        sockets.push(record);
        this.on('upgrade', (res) => (record.tcp = res.socket));
        this.on('message', (data, isBinary) => {
          if (!isBinary) record.received.push(JSON.parse(String(data)) as ServerFrame);
        });
      }
      override send(data: string): void {
        this.record.sent.push(JSON.parse(data) as RecordedSocket['sent'][number]);
        super.send(data);
      }
    };
  }

  /** The socket opened last. */
  get last(): RecordedSocket {
    const s = this.sockets.at(-1);
    if (s === undefined) throw new Error('no socket opened yet');
    return s;
  }

  /** Every frame of `type` the SDK sent, over all its sockets. */
  sent(type: string): RecordedSocket['sent'] {
    return this.sockets.flatMap((s) => s.sent.filter((f) => f.type === type));
  }

  /** Every frame of `type` the server sent, over all sockets. */
  received<T extends ServerFrame['type']>(type: T): Extract<ServerFrame, { type: T }>[] {
    return this.sockets.flatMap((s) => s.received.filter((f): f is Extract<ServerFrame, { type: T }> => f.type === type));
  }
}

/** Generous rate limits, so tests that push many messages are not throttled. */
export const FAST: Parameters<typeof startTestServer>[0] = { rateLimitPerSec: 100_000, rateLimitBurst: 100_000, userRateLimitPerSec: 0 };

let counter = 0;
export const uniqueName = (prefix = 'c'): string => `${prefix}${process.pid}_${++counter}`;

export interface Account {
  name: string;
  password: string;
  token: string;
}

/** Registers a user (through the SDK) and logs in over plain HTTP for a token. */
export async function account(server: { url: string }, name = uniqueName()): Promise<Account> {
  const password = 'correct horse battery';
  await ParleyClient.register(server.url, name, password);
  const res = await fetch(`${server.url}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: name, password }) });
  if (res.status !== 200) throw new Error(`login ${name}: ${res.status}`);
  const body = (await res.json()) as { token: string };
  return { name, password, token: body.token };
}

/** A fetch that records every request's path (and host) and can be told to fail some. */
export class CountingFetch {
  readonly calls: { host: string; path: string; at: number }[] = [];
  /** Return true to make this request fail like a network error. */
  failWhen: (host: string, path: string) => boolean = () => false;

  readonly fetch: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    this.calls.push({ host: url.host, path: url.pathname, at: Date.now() });
    if (this.failWhen(url.host, url.pathname)) throw new TypeError('fetch failed (injected)');
    return fetch(input, init);
  };

  count(path: string): number {
    return this.calls.filter((c) => c.path === path).length;
  }
}

/** A client on the test server, with `ws` and (optionally) a counting fetch. */
export function client(server: { url: string }, options: Partial<ClientOptions>, fetcher = new CountingFetch()): { c: ParleyClient; fetcher: CountingFetch; states: StateEvent[] } {
  const c = new ParleyClient({ url: server.url, WebSocket: WS, fetch: fetcher.fetch, ...options });
  const states: StateEvent[] = [];
  c.on('state', (s) => states.push(s));
  return { c, fetcher, states };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true. */
export async function waitFor(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** The server-side connections of a user. */
export type ServerConnection = ParleyServer['hub']['connections'] extends Set<infer C> ? C : never;

export function connectionsOf(server: ParleyServer, user: string): ServerConnection[] {
  return [...server.hub.connections].filter((c) => c.user === user);
}

/** Rejection code of a promise (fails the test if it resolves). */
export async function rejectionCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { code: string }).code;
  }
  throw new Error('expected a rejection');
}

/**
 * One test file's servers and clients: each is closed (clients first) after the file's tests.
 * Call it at the top of the file.
 */
export function fixture(): {
  /** A server with FAST limits and `extra`. */
  server(extra?: Parameters<typeof startTestServer>[0]): Promise<TestServer>;
  /** A server started otherwise, stopped with the others (stopping one twice is harmless). */
  adopt(s: TestServer): TestServer;
  /** Closes the client (or clients) after the tests. */
  track<T extends { c: ParleyClient }>(x: T): T;
  close(...clients: ParleyClient[]): void;
} {
  const servers: TestServer[] = [];
  const clients: ParleyClient[] = [];
  after(async () => {
    for (const c of clients) c.close();
    for (const s of servers) await s.stop();
  });
  const adopt = (s: TestServer): TestServer => {
    servers.push(s);
    return s;
  };
  return {
    server: async (extra = {}) => adopt(await startTestServer({ ...FAST, ...extra })),
    adopt,
    track: (x) => {
      clients.push(x.c);
      return x;
    },
    close: (...cs) => void clients.push(...cs),
  };
}
