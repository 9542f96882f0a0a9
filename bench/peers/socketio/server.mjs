// Socket.IO 4 chat peer for the benchmark suite: rooms, WebSocket transport only.
//   join (room, ack?)                → socket.join(room); ack({ room }) if an ack is asked for
//   send_message ({ room, message }) → io.to(room).emit('new_message', { room, from, message, sent })
// Heartbeats stay at Socket.IO's defaults (pingInterval 25 s, pingTimeout 20 s); no per-message output.
// Port: PORT env or argv[2]; listens on 127.0.0.1 (HOST env to change). GET /healthz → 200.
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.env.PORT ?? process.argv[2] ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';

const http = createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
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

io.on('connection', (socket) => {
  const from = typeof socket.handshake.auth?.name === 'string' ? socket.handshake.auth.name : socket.id;
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
  io.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
