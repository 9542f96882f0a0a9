// Socket.IO 4 chat peer for the benchmark suite: rooms, WebSocket transport only.
//   join (room, ack?)                → socket.join(room); ack({ room }) if an ack is asked for
//   send_message ({ room, message }) → io.to(room).emit('new_message', { room, from, message, sent })
// Connect as in the seed (../tickets.mjs): POST /ticket → {"otp":T}, redeemed by the handshake's
// auth { otp } (a connect_error "unauthorized" otherwise).
// Heartbeats stay at Socket.IO's defaults (pingInterval 25 s, pingTimeout 20 s); no per-message output.
// Port: PORT env or argv[2]; listens on 127.0.0.1 (HOST env to change). GET /healthz → 200.
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { createTickets } from '../tickets.mjs';

const port = Number(process.env.PORT ?? process.argv[2] ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';

const tickets = createTickets();

const http = createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    return;
  }
  if (req.url === '/ticket' && req.method === 'POST') {
    tickets.mint(req, res);
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
  const name = tickets.redeem(socket.handshake.auth?.otp);
  if (name === undefined) return next(new Error('unauthorized'));
  socket.data.name = name;
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
  tickets.close();
  io.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
