/**
 * The socket and its reconnect loop: one connection attempt after another, each with a fresh
 * ticket, full-jitter backoff between failures, failover over the URLs, and a generation
 * counter so that callbacks of a replaced attempt are ignored.
 */
import { isReconnectable } from '@parley/protocol';
import { backoffDelay } from './backoff.js';
import { isFatal } from './auth.js';
import { closeCodeName, ParleyError } from './errors.js';
import { socketUrl } from './http.js';
import type { StateEvent, WebSocketConstructor, WebSocketLike } from './types.js';

/** A connection that is not welcomed and set up (joined/resumed) within this is replaced. */
const SETUP_TIMEOUT_MS = 20_000;

type Timer = ReturnType<typeof setTimeout>;

const noop = (): void => undefined;

export interface LinkPort {
  /** A one-time ticket for a connection to `base`. */
  ticket(base: string): Promise<string>;
  /** A message arrived on the current socket. */
  data(data: unknown): void;
  /** The socket is gone: forget everything tied to it (requests stay pending). */
  disconnected(): void;
  /** A reconnect attempt is scheduled. */
  reconnecting(extra: Omit<StateEvent, 'state'>): void;
  /** Retrying cannot help (or may not go on): the client ends 'closed' with `err`. */
  fail(err: ParleyError, code: number | undefined): void;
}

export interface LinkOptions {
  urls: string[];
  WebSocket: WebSocketConstructor;
  reconnect: { baseMs: number; capMs: number; maxAttempts: number };
  random: () => number;
}

export class Link {
  /** Bumped for every attempt and by stop(): callbacks of older ones are ignored. */
  gen = 0;
  /** Welcomed: frames may be sent. */
  live = false;
  /** When the last frame arrived. */
  lastFrameAt = 0;
  private ws: WebSocketLike | undefined;
  private urlIndex = 0;
  private attempt = 0;
  private reconnectTimer: Timer | undefined;
  private setupTimer: Timer | undefined;

  constructor(
    private readonly options: LinkOptions,
    private readonly port: LinkPort,
  ) {}

  /** The base URL the current (or last) attempt went to. */
  get base(): string {
    const { urls } = this.options;
    return urls[this.urlIndex % urls.length] ?? urls[0] ?? '';
  }

  /** The current socket (whether welcomed or not). */
  get socket(): WebSocketLike | undefined {
    return this.ws;
  }

  /** Starts connecting from attempt 0. */
  start(): void {
    this.attempt = 0;
    void this.runAttempt();
  }

  /** The connection is open and set up: the next failure starts the backoff from 0 again. */
  opened(): void {
    if (this.setupTimer !== undefined) clearTimeout(this.setupTimer);
    this.setupTimer = undefined;
    this.attempt = 0;
  }

  /** No more attempts: ignores every callback of the current one and cancels a scheduled one. */
  stop(): void {
    this.gen++;
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
  }

  /** Closes the socket cleanly (1000), without a reconnect. */
  close(): void {
    this.gen++;
    const ws = this.ws;
    this.teardown();
    if (ws !== undefined) {
      try {
        ws.close(1000, 'client closed');
      } catch {
        // already closing
      }
    }
  }

  private async runAttempt(): Promise<void> {
    const gen = ++this.gen;
    this.reconnectTimer = undefined;
    const { urls } = this.options;
    const base = urls[this.urlIndex % urls.length] ?? urls[0] ?? '';
    let otp: string;
    try {
      otp = await this.port.ticket(base);
    } catch (err) {
      if (gen !== this.gen) return;
      const e = err instanceof ParleyError ? err : new ParleyError('network', String(err));
      if (isFatal(e)) this.port.fail(e, undefined);
      else this.scheduleReconnect(undefined);
      return;
    }
    if (gen !== this.gen) return;
    let ws: WebSocketLike;
    try {
      ws = new this.options.WebSocket(socketUrl(base, otp));
    } catch {
      this.scheduleReconnect(undefined);
      return;
    }
    this.ws = ws;
    ws.onerror = noop; // a close event follows
    ws.onopen = noop;
    ws.onmessage = (ev) => {
      if (gen !== this.gen) return;
      this.lastFrameAt = Date.now();
      this.port.data(ev.data);
    };
    ws.onclose = (ev) => {
      if (gen === this.gen) this.onDisconnect(ev.code);
    };
    this.setupTimer = setTimeout(() => {
      if (gen === this.gen) this.drop(); // no welcome, or the resume/joins never answered
    }, SETUP_TIMEOUT_MS);
  }

  private scheduleReconnect(code: number | undefined): void {
    const { maxAttempts } = this.options.reconnect;
    if (this.attempt >= maxAttempts) {
      const msg = `Gave up after ${this.attempt} failed attempt(s).`;
      this.port.fail(new ParleyError('unreachable', msg, code === undefined ? {} : { closeCode: code }), code);
      return;
    }
    const delayMs = backoffDelay(this.attempt, this.options.reconnect, this.options.random);
    const extra: Omit<StateEvent, 'state'> = { attempt: this.attempt, delayMs };
    if (code !== undefined) extra.code = code;
    this.attempt++;
    this.urlIndex = (this.urlIndex + 1) % this.options.urls.length;
    const gen = ++this.gen;
    this.reconnectTimer = setTimeout(() => {
      if (gen === this.gen) void this.runAttempt();
    }, delayMs);
    this.port.reconnecting(extra);
  }

  /** Forgets the current socket and everything tied to it (requests stay pending). */
  private teardown(): void {
    const ws = this.ws;
    this.ws = undefined;
    if (ws !== undefined) {
      ws.onmessage = null;
      ws.onopen = noop;
      ws.onclose = noop;
      ws.onerror = noop; // keep a listener: the `ws` package throws on an unhandled 'error'
    }
    this.live = false;
    if (this.setupTimer !== undefined) clearTimeout(this.setupTimer);
    this.setupTimer = undefined;
    this.port.disconnected();
  }

  /** Replaces a connection presumed dead (no welcome in time, no answer to a send). */
  drop(): void {
    const ws = this.ws;
    this.gen++;
    if (ws !== undefined) {
      try {
        ws.close(1000, 'reconnecting');
      } catch {
        // ignore
      }
    }
    this.onDisconnect(undefined);
  }

  private onDisconnect(code: number | undefined): void {
    this.teardown();
    if (code !== undefined && !isReconnectable(code)) {
      const name = closeCodeName(code) ?? 'closed';
      this.port.fail(new ParleyError(name, `The server closed the connection with ${code} (${name}).`, { closeCode: code }), code);
      return;
    }
    this.scheduleReconnect(code);
  }
}
