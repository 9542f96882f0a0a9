/** Parley as a benchmark target: accounts once, a ticket per connection, resume=1 sockets. */
import WebSocket from 'ws';
import { fetchTicket, post } from './load.js';
import { startParley } from './nodes.js';
import { stampOf, type BenchClient, type ConnectOptions, type RunningServer, type Target } from './target.js';

const PASSWORD = 'bench-password';
/** Connections share this many accounts (login once per account; tickets per connection). */
const ACCOUNTS = 50;

const MESSAGE_KEY = Buffer.from('"message":"@');

/** Finds `"message":"@<stamp>"` in a frame without decoding the whole frame. */
export function stampInFrame(buf: Buffer): number {
  const at = buf.indexOf(MESSAGE_KEY);
  if (at < 0) return NaN;
  const start = at + MESSAGE_KEY.length;
  const end = buf.indexOf(34 /* " */, start);
  return Number(buf.toString('latin1', start, end));
}

export function parleyTarget(env: Record<string, string> = {}): Target & { tokens: string[]; prepare: NonNullable<Target['prepare']> } {
  const tokens: string[] = [];
  const mintTicket = (server: RunningServer, index: number) => fetchTicket(server.url, tokens[index % tokens.length] as string);
  return {
    name: 'parley',
    tokens,
    start: (core) => startParley(env, core),
    async prepare(server: RunningServer) {
      tokens.length = 0;
      for (let i = 0; i < ACCOUNTS; i++) {
        const username = `bench${i}`;
        await post(server.url, '/register', { username, password: PASSWORD });
        tokens.push((await post(server.url, '/login', { username, password: PASSWORD })).token as string);
      }
    },
    async ticket(server, index) {
      await mintTicket(server, index);
    },
    async connect(server, index, room, onStamp, opts: ConnectOptions = {}): Promise<BenchClient> {
      const otp = await mintTicket(server, index);
      const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/ws?otp=${otp}&resume=1`, {
        perMessageDeflate: false,
        skipUTF8Validation: true,
        ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }),
      });
      await new Promise<void>((resolve, reject) => {
        ws.once('error', reject);
        ws.once('open', () => ws.send(JSON.stringify({ type: 'join', payload: { room } })));
        const onJoin = (data: Buffer) => {
          if (data.indexOf('{"type":"joined"') === 0) {
            ws.off('message', onJoin);
            ws.off('error', reject);
            ws.on('error', () => undefined);
            if (opts.onPing !== undefined) ws.on('ping', opts.onPing);
            if (opts.onClose !== undefined) ws.on('close', opts.onClose);
            ws.on('message', (frame: Buffer) => {
              const stamp = stampInFrame(frame);
              if (!Number.isNaN(stamp)) onStamp(stamp);
            });
            resolve();
          }
        };
        ws.on('message', onJoin);
      });
      const prefix = `{"type":"send_message","payload":{"room":${JSON.stringify(room)},"message":"@`;
      return {
        send: (stamp) => {
          if (ws.readyState === WebSocket.OPEN) ws.send(`${prefix}${stamp}"}}`);
        },
        close: () => ws.terminate(),
      };
    },
  };
}

export { stampOf };
