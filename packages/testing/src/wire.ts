/**
 * A WebSocket (the `ws` package) that records its traffic for fault tests: every frame in wire
 * order, over every connection a client makes, with the close codes it saw and a handle on the
 * TCP socket so a test can stop reading (pause) like a stalled reader.
 *
 *   const wire = new Wire();
 *   new ParleyClient({ …, WebSocket: wire.WebSocket });
 *   wire.pause(); … wire.resume();
 *   wire.ackOrderViolations();   // acks that came before their own new_message
 */
import WebSocket from 'ws';
import { isServerFrame } from '@parley/protocol';

/** One frame received, in the order the client's socket read them. */
export interface WireFrame {
  /** Which connection of the client (0, 1, …). */
  conn: number;
  type: string;
  room?: string;
  seq?: number;
  ref?: string;
  code?: string;
  recovered?: boolean;
  at: number;
}

export class Wire {
  readonly frames: WireFrame[] = [];
  /** Close codes of the client's connections, in order. */
  readonly closes: number[] = [];
  /** ref of each send_message → the connection it first went out on. */
  private readonly firstSentOn = new Map<string, number>();
  private connections = 0;
  /** The origin (http://host:port) of each connection, by its number. */
  readonly origins: string[] = [];
  private socket: RecordingSocket | undefined;
  private paused = false;

  /** The class to give the SDK as `WebSocket`: a `ws` WebSocket behind the WHATWG-style shape the SDK drives. */
  readonly WebSocket: new (url: string) => RecordingSocket;

  constructor() {
    const wire: WireSink = {
      opened: (socket, url) => {
        this.origins[this.connections] = originOf(url);
        this.socket = socket;
        if (this.paused) socket.pause();
        return this.connections++;
      },
      sent: (conn, text) => this.sent(conn, text),
      received: (conn, text) => this.received(conn, text),
      closed: (code) => this.closes.push(code),
    };
    this.WebSocket = class extends RecordingSocket {
      constructor(url: string) {
        super(url, wire);
      }
    };
  }

  /** Stops reading the current socket (and any next one until resume()). */
  pause(): void {
    this.paused = true;
    this.socket?.pause();
  }

  resume(): void {
    this.paused = false;
    this.socket?.resume();
  }

  /** Whether `ref` is one of this client's send_message refs. */
  isSend(ref: string): boolean {
    return this.firstSentOn.has(ref);
  }

  /** How many connections the client opened. */
  get connectionCount(): number {
    return this.connections;
  }

  /** `resumed` frames with recovered: false. */
  unrecovered(): WireFrame[] {
    return this.frames.filter((f) => f.type === 'resumed' && f.recovered === false);
  }

  /**
   * Acks that arrived before the new_message of their own (room, seq) on a connection where the
   * send first went out (a retry on a later connection may be re-acked before a replay reaches
   * the message: that is not the live path this checks).
   */
  ackOrderViolations(): WireFrame[] {
    const seen = new Set<string>();
    const bad: WireFrame[] = [];
    for (const f of this.frames) {
      if (f.type === 'new_message') seen.add(`${f.room}\u0000${f.seq}`);
      else if (f.type === 'ack' && f.ref !== undefined && this.firstSentOn.get(f.ref) === f.conn && !seen.has(`${f.room}\u0000${f.seq}`)) bad.push(f);
    }
    return bad;
  }

  private sent(conn: number, text: string): void {
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof frame !== 'object' || frame === null || !('type' in frame) || frame.type !== 'send_message' || !('ref' in frame)) return;
    const ref = String(frame.ref);
    if (!this.firstSentOn.has(ref)) this.firstSentOn.set(ref, conn);
  }

  private received(conn: number, text: string): void {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return;
    }
    if (!isServerFrame(value)) return;
    const f: WireFrame = { conn, type: value.type, at: Date.now() };
    switch (value.type) {
      case 'new_message':
        f.room = value.payload.room;
        f.seq = value.payload.seq;
        break;
      case 'ack':
        f.room = value.payload.room;
        f.seq = value.payload.seq;
        f.ref = String(value.payload.ref);
        break;
      case 'error':
        f.code = value.payload.code;
        if (value.payload.ref !== undefined) f.ref = String(value.payload.ref);
        break;
      case 'resumed':
        f.room = value.payload.room;
        f.seq = value.payload.seq;
        f.recovered = value.payload.recovered;
        break;
      default:
        break;
    }
    this.frames.push(f);
  }
}

interface WireSink {
  /** A connection's handshake is done; returns its number. */
  opened(socket: RecordingSocket, url: string): number;
  sent(conn: number, text: string): void;
  received(conn: number, text: string): void;
  closed(code: number): void;
}

/** The part of the WHATWG WebSocket the SDK uses, over a `ws` WebSocket, reporting to a Wire. */
export class RecordingSocket {
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason?: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  private readonly ws: WebSocket;
  /** Frames sent before the handshake finished count as the next connection's. */
  private conn = -1;

  constructor(
    url: string,
    private readonly wire: WireSink,
  ) {
    this.ws = new WebSocket(url);
    this.ws.onopen = (e) => {
      this.conn = wire.opened(this, url);
      this.onopen?.(e);
    };
    this.ws.onmessage = (e) => {
      if (typeof e.data === 'string') wire.received(this.conn, e.data);
      this.onmessage?.(e);
    };
    this.ws.onclose = (e) => {
      wire.closed(e.code);
      this.onclose?.(e);
    };
    this.ws.onerror = (e) => this.onerror?.(e);
  }

  get readyState(): number {
    return this.ws.readyState;
  }

  send(data: string): void {
    this.wire.sent(this.conn, data);
    this.ws.send(data);
  }

  close(code?: number, reason?: string): void {
    this.ws.close(code, reason);
  }

  /** Stops reading the TCP socket (ws keeps it paused until resume()). */
  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }
}

/** ws://host:port/ws?… → http://host:port (the node's URL). */
function originOf(url: string): string {
  const u = new URL(url);
  return `${u.protocol === 'wss:' ? 'https:' : 'http:'}//${u.host}`;
}
