/**
 * The load generator's WebSocket client (bench/src/wire.ts) against a real `ws` server, and
 * against a raw TCP server that writes frames split and fragmented as the protocol allows.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { openWire as open, stampInFrame, type Wire, type WireHandlers } from '../src/wire.js';

/** Every Wire a test opened, closed after each test (pass or fail) so the process can exit. */
const opened: Wire[] = [];
const openWire = async (url: string, handlers: WireHandlers): Promise<Wire> => {
  const wire = await open(url, handlers);
  opened.push(wire);
  return wire;
};
afterEach(() => {
  for (const w of opened.splice(0)) w.close();
});

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Collects what a Wire reports. */
function recorder() {
  const messages: string[] = [];
  const closes: number[] = [];
  let pings = 0;
  return {
    messages,
    closes,
    get pings() {
      return pings;
    },
    handlers: {
      onMessage: (data: Buffer) => messages.push(data.toString('utf8')),
      onPing: () => pings++,
      onClose: (code: number) => closes.push(code),
    },
  };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('wire client against a ws server', () => {
  let wss: WebSocketServer;
  let url: string;

  /** Opens a Wire with a good ticket; resolves with it, the server's side of it and what it reports. */
  async function pair() {
    const r = recorder();
    const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
    const wire = await openWire(`${url}/ws?otp=good`, r.handlers);
    const [ws] = await accepted;
    const received: string[] = [];
    ws.on('message', (data) => received.push(String(data)));
    return { wire, ws, r, received };
  }

  before(async () => {
    wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      verifyClient: (info, done) => (info.req.url?.includes('otp=good') === true ? done(true) : done(false, 401)),
    });
    await once(wss, 'listening');
    url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  });
  after(() => {
    for (const c of wss.clients) c.terminate();
    wss.close();
  });

  it('upgrades, and its masked frames reach the server whole (short, 16-bit and 64-bit lengths)', async () => {
    const { wire, received } = await pair();
    assert.equal(wire.open, true);
    const texts = ['hi', 'é'.repeat(200), 'x'.repeat(70_000)];
    for (const t of texts) wire.send(t);
    await until(() => received.length === 3, 'three messages at the server');
    assert.deepEqual(received, texts);
  });

  it('receives messages of every length, answers pings and reports them', async () => {
    const { wire, ws, r } = await pair();
    let pongs = 0;
    ws.on('pong', (data) => {
      if (String(data) === 'p1') pongs++;
    });
    const texts = ['{"message":"@12.5"}', 'y'.repeat(300), 'z'.repeat(66_000)];
    for (const t of texts) ws.send(t);
    ws.ping('p1');
    await until(() => r.messages.length === 3 && pongs === 1, 'three messages and a pong');
    assert.deepEqual(r.messages, texts);
    assert.equal(r.pings, 1);
    assert.equal(stampInFrame(Buffer.from(texts[0] as string)), 12.5);
  });

  it("reports the server's close code", async () => {
    const { wire, ws, r } = await pair();
    const closed = once(ws, 'close');
    ws.close(4500, 'bye');
    const [code] = (await closed) as [number];
    assert.equal(code, 4500, 'the server got its close frame echoed');
    await until(() => r.closes.length === 1, 'the close');
    assert.deepEqual(r.closes, [4500]);
    assert.equal(wire.open, false);
  });

  it('rejects a refused upgrade with the status line', async () => {
    await assert.rejects(openWire(`${url}/ws?otp=bad`, recorder().handlers), /upgrade refused: HTTP\/1\.1 401/);
  });
});

describe('wire client against a raw server', () => {
  let tcp: Server;
  let port: number;
  /** What the raw server does once it has read the upgrade request (with its key). */
  let script: (socket: Socket, key: string) => void = () => undefined;

  const sockets = new Set<Socket>();

  before(async () => {
    tcp = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      let head = '';
      socket.on('data', (chunk) => {
        if (head.endsWith('\r\n\r\n')) return;
        head += chunk.toString('latin1');
        if (!head.endsWith('\r\n\r\n')) return;
        script(socket, /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? '');
      });
      socket.on('error', () => undefined);
    });
    tcp.listen(0, '127.0.0.1');
    await once(tcp, 'listening');
    port = (tcp.address() as AddressInfo).port;
  });
  after(() => {
    for (const s of sockets) s.destroy();
    tcp.close();
  });

  const upgraded = (key: string) =>
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${createHash('sha1').update(key + GUID).digest('base64')}\r\n\r\n`;
  /** A server frame: FIN bit, opcode, payload (short lengths only). */
  const frame = (fin: boolean, op: number, payload: string) => Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | op, Buffer.byteLength(payload)]), Buffer.from(payload)]);

  it('reads frames split across reads, sent with the 101, and fragmented messages', async () => {
    script = (socket, key) => {
      // The 101 and the first frame in one write, then the rest a byte at a time.
      socket.write(Buffer.concat([Buffer.from(upgraded(key)), frame(true, 1, 'first')]));
      const rest = Buffer.concat([frame(true, 1, 'second'), frame(false, 1, 'frag'), frame(false, 0, 'men'), frame(true, 0, 'ted'), frame(true, 1, 'last')]);
      let i = 0;
      const drip = setInterval(() => {
        if (i >= rest.length) clearInterval(drip);
        else socket.write(rest.subarray(i, ++i));
      }, 1);
    };
    const r = recorder();
    await openWire(`ws://127.0.0.1:${port}/ws`, r.handlers);
    await until(() => r.messages.length === 4, 'four messages');
    assert.deepEqual(r.messages, ['first', 'second', 'fragmented', 'last']);
  });

  it('refuses a 101 without the right Sec-WebSocket-Accept', async () => {
    script = (socket) => socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n');
    await assert.rejects(openWire(`ws://127.0.0.1:${port}/ws`, recorder().handlers), /Sec-WebSocket-Accept/);
  });

  it('reports 1006 when the server goes away without a close frame', async () => {
    let serverSide: Socket | undefined;
    script = (socket, key) => {
      serverSide = socket;
      socket.write(upgraded(key));
    };
    const r = recorder();
    await openWire(`ws://127.0.0.1:${port}/ws`, r.handlers);
    serverSide?.destroy();
    await until(() => r.closes.length === 1, 'the close');
    assert.deepEqual(r.closes, [1006]);
  });
});
