// Bare `ws` chat peer for the benchmark suite: the least work for Parley's frame protocol.
//   {"type":"join","payload":{"room":R}}                   → add to room R, reply {"type":"joined","payload":{"room":R}}
//   {"type":"send_message","payload":{"room":R,"message":M}} → build new_message once, JSON.stringify once,
//                                                             send the same string to every member of R
// Heartbeat as in ws's README: ping every 25 s, terminate a connection that missed the last pong.
// Connect as in the seed (../tickets.mjs): POST /ticket → {"otp":T}; GET /ws?otp=T upgrades once per
// ticket (401 otherwise).
// perMessageDeflate off. Port: PORT env or argv[2]; 127.0.0.1 (HOST env to change). GET /healthz → 200.
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { createTickets } from '../tickets.mjs';

const port = Number(process.env.PORT ?? process.argv[2] ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';
const PING_MS = Number(process.env.PING_MS ?? 25_000);
const MAX_PAYLOAD = 64 * 1024;

/** room name → members */
const rooms = new Map();
let nextId = 1;
const tickets = createTickets();

/** The ticket in `?otp=`, redeemed: the name it was minted for, or undefined. */
function redeem(url) {
  const at = url.indexOf('otp=');
  if (at < 0) return undefined;
  const end = url.indexOf('&', at);
  return tickets.redeem(url.slice(at + 4, end < 0 ? undefined : end));
}

const http = createServer((req, res) => {
  if (req.url === '/healthz') res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  else if (req.url === '/ticket' && req.method === 'POST') tickets.mint(req, res);
  else res.writeHead(404).end();
});

const wss = new WebSocketServer({
  server: http,
  perMessageDeflate: false,
  maxPayload: MAX_PAYLOAD,
  clientTracking: true,
  // Synchronous form: false answers 401.
  verifyClient: (info) => {
    info.req.name = redeem(info.req.url ?? '');
    return info.req.name !== undefined;
  },
});

function leaveAll(ws) {
  for (const room of ws.rooms) {
    const members = rooms.get(room);
    if (members === undefined) continue;
    members.delete(ws);
    if (members.size === 0) rooms.delete(room);
  }
  ws.rooms.clear();
}

wss.on('connection', (ws, req) => {
  ws.isAlive = true;
  ws.id = `${req.name}#${nextId++}`;
  ws.rooms = new Set();
  ws.on('pong', () => {
    ws.isAlive = true;
  });
  ws.on('error', () => ws.terminate());
  ws.on('close', () => leaveAll(ws));
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    let ev;
    try {
      ev = JSON.parse(data);
    } catch {
      return;
    }
    const p = ev?.payload;
    if (p === null || typeof p !== 'object' || typeof p.room !== 'string') return;
    switch (ev.type) {
      case 'join': {
        let members = rooms.get(p.room);
        if (members === undefined) rooms.set(p.room, (members = new Set()));
        members.add(ws);
        ws.rooms.add(p.room);
        ws.send(JSON.stringify({ type: 'joined', payload: { room: p.room } }));
        break;
      }
      case 'send_message': {
        if (typeof p.message !== 'string' || !ws.rooms.has(p.room)) return;
        const members = rooms.get(p.room);
        if (members === undefined) return;
        const str = JSON.stringify({
          type: 'new_message',
          payload: { room: p.room, from: ws.id, message: p.message, sent: new Date().toISOString() },
        });
        // Encode once too: the same bytes to every member, as a text frame.
        const data = Buffer.from(str);
        for (const client of members) client.send(data, { binary: false });
        break;
      }
      default:
    }
  });
});

const interval = setInterval(() => {
  for (const ws of wss.clients) {
    if (ws.isAlive === false) {
      ws.terminate();
      continue;
    }
    ws.isAlive = false;
    ws.ping();
  }
}, PING_MS);

wss.on('close', () => clearInterval(interval));

http.listen(port, host);

const shutdown = () => {
  clearInterval(interval);
  tickets.close();
  for (const ws of wss.clients) ws.terminate();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
