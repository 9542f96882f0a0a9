/**
 * The load generator's WebSocket client (RFC 6455), for Parley and the peers that speak its
 * frames (the `ws` and Go peers). It does the least a client must: the upgrade request, then
 * frames read straight off the TCP socket's chunks, pings answered, a close answered.
 *
 * Why not the `ws` client: the many-small-rooms workload has one load-generator core receive
 * every delivery of a server core, and the `ws` client spends about as much CPU per received
 * message as the servers under test spend per delivery (its Receiver is a Writable stream with
 * an event per message). With it the generator, not the server, set the highest passing rate.
 *
 * Client frames are masked, as the protocol requires, with a zero masking key (the payload is
 * unchanged): what `ws` does with its `generateMask` option for load tests. Servers cannot tell.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { BenchClient, ConnectOptions } from './target.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

const enum Op {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
  Close = 0x8,
  Ping = 0x9,
  Pong = 0xa,
}

export interface WireHandlers {
  /** A whole text or binary message. The Buffer may be a view into the read chunk: copy what you keep. */
  onMessage(data: Buffer): void;
  /** A ping from the server (already answered). */
  onPing?(): void;
  /** The connection ended: the close code the server sent, or 1006 when it just went away. */
  onClose?(code: number): void;
}

export interface Wire {
  /** Sends one text message (dropped once the connection is no longer open). */
  send(text: string): void;
  readonly open: boolean;
  /** Destroys the socket at once. */
  close(): void;
}

/** A masked client frame (zero masking key) holding `payload`. */
function clientFrame(op: Op, payload: Buffer | string): Buffer {
  const n = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  const head = n < 126 ? 6 : n < 65_536 ? 8 : 14;
  const frame = Buffer.allocUnsafe(head + n);
  frame[0] = 0x80 | op; // FIN
  if (n < 126) {
    frame[1] = 0x80 | n;
  } else if (n < 65_536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
    frame.writeUInt32BE(n >>> 0, 6);
  }
  frame.writeUInt32BE(0, head - 4); // the masking key
  if (typeof payload === 'string') frame.write(payload, head, 'utf8');
  else payload.copy(frame, head);
  return frame;
}

/**
 * Opens a WebSocket to `url` (ws://host:port/path?query) and resolves once the server answered
 * 101 with the right Sec-WebSocket-Accept; rejects with the status line otherwise (say, 401 for a
 * refused ticket).
 */
export function openWire(url: string, handlers: WireHandlers, localAddress?: string): Promise<Wire> {
  const u = new URL(url);
  const key = randomBytes(16).toString('base64');
  const accept = createHash('sha1').update(key + GUID).digest('base64');
  const socket: Socket = connect({ host: u.hostname, port: Number(u.port), ...(localAddress === undefined ? {} : { localAddress }) });
  socket.setNoDelay(true);
  socket.write(
    `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );

  let open = false;
  let ended = false;
  /** Bytes of an incomplete frame (or response head) carried over to the next chunk. */
  let rest: Buffer | undefined;
  /** Payloads of a fragmented message so far. */
  let fragments: Buffer[] | undefined;

  const end = (code: number) => {
    if (ended) return;
    ended = true;
    open = false;
    if (code !== 0) handlers.onClose?.(code);
  };

  const control = (op: Op, payload: Buffer) => {
    if (op === Op.Ping) {
      socket.write(clientFrame(Op.Pong, payload));
      handlers.onPing?.();
    } else if (op === Op.Close) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      if (open) socket.end(clientFrame(Op.Close, payload.subarray(0, 2)));
      end(code);
    }
  };

  /** Reads every whole frame in `buf`; keeps the incomplete tail in `rest`. */
  const frames = (buf: Buffer) => {
    let at = 0;
    while (buf.length - at >= 2) {
      const b0 = buf[at] as number;
      const b1 = buf[at + 1] as number;
      if ((b1 & 0x80) !== 0) {
        socket.destroy(new Error('the server sent a masked frame'));
        return;
      }
      let n = b1 & 0x7f;
      let head = 2;
      if (n === 126) {
        if (buf.length - at < 4) break;
        n = buf.readUInt16BE(at + 2);
        head = 4;
      } else if (n === 127) {
        if (buf.length - at < 10) break;
        n = buf.readUInt32BE(at + 2) * 2 ** 32 + buf.readUInt32BE(at + 6);
        head = 10;
      }
      if (buf.length - at < head + n) break;
      const payload = buf.subarray(at + head, at + head + n);
      at += head + n;
      const op = (b0 & 0x0f) as Op;
      const fin = (b0 & 0x80) !== 0;
      if (op >= Op.Close) control(op, payload);
      else if (op !== Op.Continuation && fin) handlers.onMessage(payload);
      else {
        // A fragmented message (no server here sends one, but the protocol allows it).
        if (op !== Op.Continuation) fragments = [];
        fragments?.push(Buffer.from(payload));
        if (fin && fragments !== undefined) {
          handlers.onMessage(Buffer.concat(fragments));
          fragments = undefined;
        }
      }
    }
    rest = at < buf.length ? buf.subarray(at) : undefined;
  };

  const wire: Wire = {
    send: (text) => {
      if (open) socket.write(clientFrame(Op.Text, text));
    },
    get open() {
      return open;
    },
    close: () => {
      socket.destroy();
      end(0);
    },
  };

  return new Promise<Wire>((resolve, reject) => {
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.on('error', (err) => {
      if (!open) fail(err);
    });
    socket.on('close', () => {
      if (!open && !ended) fail(new Error('connection closed during the upgrade'));
      end(1006);
    });
    socket.on('data', (chunk: Buffer) => {
      const buf = rest === undefined ? chunk : Buffer.concat([rest, chunk]);
      if (open) {
        frames(buf);
        return;
      }
      const headEnd = buf.indexOf('\r\n\r\n');
      if (headEnd < 0) {
        rest = buf;
        return;
      }
      const head = buf.toString('latin1', 0, headEnd);
      const status = head.slice(0, head.indexOf('\r\n'));
      if (!/^HTTP\/1\.1 101 /.test(status)) return fail(new Error(`upgrade refused: ${status}`));
      const accepted = head.split('\r\n').some((line) => {
        const colon = line.indexOf(':');
        return colon > 0 && line.slice(0, colon).trim().toLowerCase() === 'sec-websocket-accept' && line.slice(colon + 1).trim() === accept;
      });
      if (!accepted) {
        return fail(new Error('upgrade answered without the right Sec-WebSocket-Accept'));
      }
      open = true;
      resolve(wire);
      frames(buf.subarray(headEnd + 4));
    });
  });
}

const MESSAGE_KEY = Buffer.from('"message":"@');

/** Finds `"message":"@<stamp>"` in a frame without decoding the whole frame. */
export function stampInFrame(buf: Buffer): number {
  const at = buf.indexOf(MESSAGE_KEY);
  if (at < 0) return NaN;
  const start = at + MESSAGE_KEY.length;
  const end = buf.indexOf(34 /* " */, start);
  return Number(buf.toString('latin1', start, end));
}

const JOINED = Buffer.from('{"type":"joined"');
const WELCOME = Buffer.from('{"type":"welcome"');

/** How a frameClient comes to be in its rooms. */
export type Entry =
  /** It sends `join` for each room (today's way, and the only one before stored memberships). */
  | 'join'
  /**
   * It sends nothing: the server follows the user's stored memberships on connect. The welcome
   * must list exactly these rooms, and a `joined` must come for each; anything else rejects.
   */
  | 'follow';

/**
 * A client of Parley's frame protocol (Parley, and the `ws` and Go peers): opens `url`, comes to
 * be in `rooms` (one room name, or several; see Entry), resolves once a `joined` arrived for
 * each; from then on reports the stamp of every message it receives, and sends stamped
 * `send_message` events to the first room.
 */
export async function frameClient(url: string, rooms: string | readonly string[], onStamp: (stamp: number) => void, opts: ConnectOptions = {}, entry: Entry = 'join'): Promise<BenchClient> {
  const list = typeof rooms === 'string' ? [rooms] : rooms;
  const first = list[0];
  if (first === undefined) throw new Error('frameClient: no room');
  /** Rooms whose `joined` has not come yet (several rooms, or follow: matched by name). */
  const pending = new Set(list);
  const byName = list.length > 1 || entry === 'follow';
  let joining: { resolve: () => void; reject: (err: Error) => void } | undefined;
  const joined = new Promise<void>((resolve, reject) => (joining = { resolve, reject }));
  joined.catch(() => undefined); // awaited below; a close before that must not count as unhandled
  const fail = (err: Error) => {
    joining?.reject(err);
    joining = undefined;
  };
  const wire = await openWire(
    url,
    {
      onMessage: (data) => {
        if (joining === undefined) {
          const stamp = stampInFrame(data);
          if (!Number.isNaN(stamp)) onStamp(stamp);
        } else if (data.subarray(0, JOINED.length).equals(JOINED)) {
          if (byName) {
            const room = (JSON.parse(data.toString('utf8')) as { payload: { room: string } }).payload.room;
            pending.delete(room);
            if (pending.size > 0) return;
          }
          joining.resolve();
          joining = undefined;
        } else if (entry === 'follow' && data.subarray(0, WELCOME.length).equals(WELCOME)) {
          const listed = ((JSON.parse(data.toString('utf8')) as { payload: { rooms?: { room: string }[] } }).payload.rooms ?? []).map((m) => m.room);
          const same = listed.length === list.length && listed.every((r) => pending.has(r));
          if (!same) fail(new Error(`welcome lists ${JSON.stringify(listed)}, not the memberships ${JSON.stringify(list)}`));
        }
      },
      onPing: opts.onPing,
      onClose: (code) => {
        if (joining === undefined) opts.onClose?.(code);
        else fail(new Error(`closed (${code}) before joined`));
      },
    },
    opts.localAddress,
  );
  if (entry === 'join') for (const room of list) wire.send(JSON.stringify({ type: 'join', payload: { room } }));
  try {
    await joined;
  } catch (err) {
    wire.close();
    throw err;
  }
  const prefix = `{"type":"send_message","payload":{"room":${JSON.stringify(first)},"message":"@`;
  return {
    send: (stamp) => wire.send(`${prefix}${stamp}"}}`),
    close: () => wire.close(),
  };
}
