// The seed's connect handshake for the Node peers (ws, Socket.IO), with the least work:
//   POST /ticket with Authorization: Bearer <name> → {"otp":T}, a one-time ticket kept 5 s (the
//   seed's RetentionMap); the upgrade redeems T once. No accounts: the bearer is the user's name.
import { randomBytes } from 'node:crypto';

const TICKET_MS = 5_000;

export function createTickets() {
  /** one-time ticket → { name, expires } */
  const tickets = new Map();
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [otp, t] of tickets) if (t.expires <= now) tickets.delete(otp);
  }, 400);
  return {
    /** Answers POST /ticket: 401 without a bearer, else a fresh ticket as JSON. */
    mint(req, res) {
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
    },
    /** Consumes a ticket: the name it was minted for, or undefined when unknown, used or expired. */
    redeem(otp) {
      const t = typeof otp === 'string' ? tickets.get(otp) : undefined;
      if (t === undefined) return undefined;
      tickets.delete(otp);
      return t.expires > Date.now() ? t.name : undefined;
    },
    close() {
      clearInterval(sweep);
    },
  };
}
