/** Parley as a benchmark target: accounts once, a ticket per connection, resume=1 sockets. */
import { fetchTicket, post } from './load.js';
import { startParley } from './nodes.js';
import type { RunningServer, Target } from './target.js';
import { frameClient } from './wire.js';

const PASSWORD = 'bench-password';
/** Connections share this many accounts (login once per account; tickets per connection). */
const ACCOUNTS = 50;

export function parleyTarget(env: Record<string, string> = {}, cli?: string): Target & { tokens: string[]; prepare: NonNullable<Target['prepare']> } {
  const tokens: string[] = [];
  const mintTicket = (server: RunningServer, index: number) => fetchTicket(server.url, tokens[index % tokens.length] as string);
  return {
    name: 'parley',
    tokens,
    start: (core) => startParley(env, core, cli),
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
    async connect(server, index, room, onStamp, opts) {
      const otp = await mintTicket(server, index);
      return frameClient(`${server.url.replace(/^http/, 'ws')}/ws?otp=${otp}&resume=1`, room, onStamp, opts);
    },
  };
}
