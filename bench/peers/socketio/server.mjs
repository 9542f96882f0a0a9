// Socket.IO 4 chat peer for the benchmark suite: rooms, WebSocket transport only.
//   join (room, ack?)                → socket.join(room); ack({ room }) if an ack is asked for
//   send_message ({ room, message }) → io.to(room).emit('new_message', { room, from, message, sent })
// Connect as in the seed: POST /ticket (Authorization: Bearer <name>) → {"otp":T}, a one-time ticket
// kept 5 s, redeemed by the handshake's auth { otp } (a connect_error "unauthorized" otherwise).
// Heartbeats stay at Socket.IO's defaults (pingInterval 25 s, pingTimeout 20 s); no per-message output.
// Port: PORT env or argv[2]; listens on 127.0.0.1 (HOST env to change). GET /healthz → 200.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.env.PORT ?? process.argv[2] ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';

/** one-time ticket → { name, expires } (the seed's RetentionMap, 5 s) */
const tickets = new Map();
const TICKET_MS = 5_000;
const sweep = setInterval(() => {
  const now = Date.now();
  for (const [otp, t] of tickets) if (t.expires <= now) tickets.delete(otp);
}, 400);

const http = createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    return;
  }
  if (req.url === '/ticket' && req.method === 'POST') {
    req.resume();
    const auth = req.headers.authorization;
    if (auth === undefined || !auth.startsWith('Bearer ') || auth.length === 7) {
      res.writeHead(401).end();
      return;
    }
    const otp = randomBytes(24).toString('base64url');
    tickets.set(otp, { name: auth.slice(7), expires: Date.now() + TICKET_MS });
    const body = `{"otp":"${otp}"}`;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body);
    return;
  }
  // Socket.IO answers its own path before this handler; anything else is not ours.
  if (!req.url?.startsWith('/socket.io/')) res.writeHead(404).end();
});

const io = new Server(http, {
  transports: ['websocket'],
  allowUpgrades: false,
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
});

io.use((socket, next) => {
  const otp = socket.handshake.auth?.otp;
  const t = typeof otp === 'string' ? tickets.get(otp) : undefined;
  if (t === undefined) return next(new Error('unauthorized'));
  tickets.delete(otp);
  if (t.expires <= Date.now()) return next(new Error('unauthorized'));
  socket.data.name = t.name;
  next();
});

io.on('connection', (socket) => {
  const from = socket.data.name;
  socket.on('join', (room, ack) => {
    if (typeof room !== 'string') return;
    socket.join(room);
    if (typeof ack === 'function') ack({ room });
  });
  socket.on('send_message', (data) => {
    if (data === null || typeof data !== 'object' || typeof data.room !== 'string' || typeof data.message !== 'string') return;
    io.to(data.room).emit('new_message', { room: data.room, from, message: data.message, sent: new Date().toISOString() });
  });
});

http.listen(port, host);

const shutdown = () => {
  clearInterval(sweep);
  io.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
