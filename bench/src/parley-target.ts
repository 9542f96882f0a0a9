/** Parley as a benchmark target: accounts once, a ticket per connection, resume=1 sockets. */
import { fetchTicket, post } from './load.js';
import { startParley } from './nodes.js';
import type { RunningServer, Target } from './target.js';
import { frameClient, openWire, type Wire } from './wire.js';

const PASSWORD = 'bench-password';
/** Connections share this many accounts (login once per account; tickets per connection). */
const ACCOUNTS = 50;
/** Joins first (the members variants' setup), so that it, not a bench account, owns DEFAULT_ROOM. */
const OWNER = 'benchowner';

export interface ParleyTargetOptions {
  /**
   * The build stores memberships (issue 16): the members variants make them once before the
   * measured part and then connect without resume=1, so the server follows them on connect.
   * False for a build before (parley-prev): the variants join the rooms after connect.
   */
  storedMemberships?: boolean;
}

type Frame = { type: string; payload?: Record<string, unknown> };

/** A setup connection: every frame parsed, and a wait for the first frame matching a test. */
async function setupSession(url: string): Promise<{ wire: Wire; next(test: (f: Frame) => boolean, what: string): Promise<Frame> }> {
  const frames: Frame[] = [];
  let waiter: (() => void) | undefined;
  let closed: number | undefined;
  const wire = await openWire(url, {
    onMessage: (data) => {
      frames.push(JSON.parse(data.toString('utf8')) as Frame);
      waiter?.();
    },
    onClose: (code) => {
      closed = code;
      waiter?.();
    },
  });
  const next = async (test: (f: Frame) => boolean, what: string): Promise<Frame> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const error = frames.find((f) => f.type === 'error');
      if (error !== undefined) throw new Error(`setup: ${what}: ${JSON.stringify(error.payload)}`);
      const at = frames.findIndex(test);
      if (at >= 0) return frames.splice(at, 1)[0] as Frame;
      if (closed !== undefined) throw new Error(`setup: closed (${closed}) waiting for ${what}`);
      if (Date.now() > deadline) throw new Error(`setup: no ${what} within 10 s`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 250);
        waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      waiter = undefined;
    }
  };
  return { wire, next };
}

const wsUrl = (server: RunningServer, otp: string, resume: boolean) => `${server.url.replace(/^http/, 'ws')}/ws?otp=${otp}${resume ? '&resume=1' : ''}`;
const roomOfFrame = (f: Frame): unknown => f.payload?.room;

export function parleyTarget(env: Record<string, string> = {}, cli?: string, o: ParleyTargetOptions = {}): Target & { tokens: string[]; prepare: NonNullable<Target['prepare']> } {
  const tokens: string[] = [];
  const mintTicket = (server: RunningServer, index: number) => fetchTicket(server.url, tokens[index % tokens.length] as string);
  // Rooms like teams: account a is in team a … team a+k-1 (mod ACCOUNTS), so each room has k accounts.
  const roomsOf = (index: number, perAccount: number): string[] => {
    const a = index % ACCOUNTS;
    return Array.from({ length: perAccount }, (_, j) => `team${(a + j) % ACCOUNTS}`);
  };
  const target: Target & { tokens: string[]; prepare: NonNullable<Target['prepare']> } = {
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
    roomsOf,
    async connect(server, index, room, onStamp, opts) {
      const otp = await mintTicket(server, index);
      const rooms = opts?.rooms;
      if (rooms === undefined) return frameClient(wsUrl(server, otp, true), room, onStamp, opts);
      // Members variants: followed on connect from the store, or (a build before) joined after connect.
      if (o.storedMemberships === true) return frameClient(wsUrl(server, otp, false), rooms, onStamp, opts, 'follow');
      return frameClient(wsUrl(server, otp, true), rooms, onStamp, opts, 'join');
    },
  };
  if (o.storedMemberships === true) {
    target.prepareMemberships = async (server, perAccount) => {
      // The first connection of a user in no room makes it a member of DEFAULT_ROOM (creating
      // it): the owner account connects first, so each bench account may leave it again.
      await post(server.url, '/register', { username: OWNER, password: PASSWORD });
      const ownerToken = (await post(server.url, '/login', { username: OWNER, password: PASSWORD })).token as string;
      const owner = await setupSession(wsUrl(server, await fetchTicket(server.url, ownerToken), true));
      await owner.next((f) => f.type === 'welcome', 'welcome');
      owner.wire.close();
      for (let a = 0; a < tokens.length; a++) {
        const s = await setupSession(wsUrl(server, await mintTicket(server, a), true));
        const welcome = await s.next((f) => f.type === 'welcome', 'welcome');
        const listed = ((welcome.payload?.rooms ?? []) as { room: string }[]).map((m) => m.room);
        const mine = roomsOf(a, perAccount);
        for (const room of mine) s.wire.send(JSON.stringify({ type: 'join', payload: { room } }));
        for (const room of mine) await s.next((f) => f.type === 'joined' && roomOfFrame(f) === room, `joined ${room}`);
        for (const room of listed.filter((r) => !mine.includes(r))) {
          s.wire.send(JSON.stringify({ type: 'leave', payload: { room } }));
          await s.next((f) => f.type === 'left' && roomOfFrame(f) === room, `left ${room}`);
        }
        s.wire.close();
      }
    };
  }
  return target;
}
