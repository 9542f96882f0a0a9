/**
 * Redis presence, shared by every node. Per room and user a sorted set of that user's
 * connections scored by expiry time, and per room a sorted set of users scored by their latest
 * expiry. `add` returns the room's users from the same script (one round trip per join). Each
 * node refreshes its own connections every ttl/3; a node that dies stops refreshing, so its
 * users drop out of `list` within the TTL. First/last detection runs in Lua, atomically, so two
 * nodes adding the same user at once report "first" exactly once.
 */
import { BackendUnavailableError, guarded, OutageReporter } from '../driver.js';
import { ShardDriver, type RedisShard } from '../redis/index.js';
import type {} from '../redis/scripts.js';
import { PresenceIndex } from './local.js';
import type { Joined, Presence } from './presence.js';

const ADD = `
local now = tonumber(ARGV[1]); local exp = tonumber(ARGV[2]); local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local before = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], exp, ARGV[4])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], 'GT', exp, ARGV[5])
redis.call('PEXPIRE', KEYS[2], ttl)
local first = 0
if before == 0 then first = 1 end
return {first, redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')}`;

const REMOVE = `
local now = tonumber(ARGV[1])
local removed = redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[3])
  if removed == 1 then return 1 end
end
return 0`;

/**
 * A refresh of one room's users on this node: KEYS[1] the room's set, KEYS[2..] the users'
 * sets; ARGV: expiry, ttl, now, then per user its name, its connection count and the
 * connections. One call per room (or per REFRESH_USERS of its users) instead of four commands
 * per user: an idle node with many connections makes little garbage and few round trips every
 * ttl/3. It then takes the room's expired users out (a node that stopped refreshing: crashed
 * or cut off) and returns them, with the users it put back (this node's, after it was cut off
 * long enough for another node to take them out): {gone, back}. Being atomic, only one node
 * reports each.
 */
const REFRESH = `
local exp = ARGV[1]; local ttl = ARGV[2]; local a = 4
local back = {}
for k = 2, #KEYS do
  local n = tonumber(ARGV[a + 1])
  for j = a + 2, a + 1 + n do redis.call('ZADD', KEYS[k], exp, ARGV[j]) end
  redis.call('PEXPIRE', KEYS[k], ttl)
  if redis.call('ZADD', KEYS[1], 'GT', exp, ARGV[a]) == 1 then back[#back + 1] = ARGV[a] end
  a = a + 2 + n
end
redis.call('PEXPIRE', KEYS[1], ttl)
local before = '(' .. ARGV[3]
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', before)
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', before) end
return {gone, back}`;

/** Users per refresh call: a room with more of them here takes several calls. */
const REFRESH_USERS = 500;
/** Refresh calls per pipeline: bounds the memory a refresh of many rooms takes. */
const REFRESH_CALLS = 200;

/** Which refresh calls' results are usable: a pair of string arrays. */
const isPair = (v: unknown): v is [string[], string[]] => Array.isArray(v) && v.length === 2 && Array.isArray(v[0]) && Array.isArray(v[1]);

export class RedisPresence extends ShardDriver implements Presence {
  /** The shard's command connection. */
  private readonly cmd: RedisShard['command'];
  /** This node's entries (room → user → connections), refreshed every ttl/3. */
  private readonly local = new PresenceIndex();
  private timer: NodeJS.Timeout | undefined;
  private refreshing = false;
  /** A refresh that keeps failing (Redis down) is reported once per outage. */
  private readonly outage = new OutageReporter(() => this.onBackgroundError);
  onExpired?: ((room: string, users: string[]) => void) | undefined;
  onReturned?: ((room: string, users: string[]) => void) | undefined;

  constructor(
    redis: RedisShard,
    private readonly ttlMs: number,
    private readonly prefix = 'parley:',
  ) {
    super(redis);
    this.cmd = redis.command;
    this.cmd.defineCommand('parleyPresenceAdd', { numberOfKeys: 2, lua: ADD });
    this.cmd.defineCommand('parleyPresenceRemove', { numberOfKeys: 2, lua: REMOVE });
    this.cmd.defineCommand('parleyPresenceRefresh', { lua: REFRESH }); // numkeys first
  }

  /** Connects and starts refreshing this node's entries every ttl/3. */
  override async init(): Promise<void> {
    this.timer ??= setInterval(() => void this.refresh().then(() => this.outage.succeeded(), (err: unknown) => this.outage.failed(new BackendUnavailableError('presence', this.driver, err))), Math.max(100, Math.floor(this.ttlMs / 3))).unref();
    await super.init();
  }

  private userKey = (room: string, user: string) => `${this.prefix}presence:${room}:u:${user}`;
  private roomKey = (room: string) => `${this.prefix}presence:${room}`;

  async add(room: string, user: string, conn: string): Promise<Joined> {
    this.local.add(room, user, conn);
    const now = Date.now();
    const [first, users] = await guarded('presence', this.driver, () => this.cmd.parleyPresenceAdd(this.userKey(room, user), this.roomKey(room), now, now + this.ttlMs, this.ttlMs, conn, user));
    return { first: first === 1, users: users.sort() };
  }

  async remove(room: string, user: string, conn: string): Promise<boolean> {
    this.local.remove(room, user, conn);
    return (await guarded('presence', this.driver, () => this.cmd.parleyPresenceRemove(this.userKey(room, user), this.roomKey(room), Date.now(), conn, user))) === 1;
  }

  async list(room: string): Promise<string[]> {
    const users = await guarded('presence', this.driver, () => this.cmd.zrangebyscore(this.roomKey(room), Date.now(), '+inf'));
    return users.sort();
  }

  /**
   * Pushes this node's entries' expiry forward: per room one REFRESH call (ZADD of each user's
   * connections here and ZADD GT of the users, each set with its PEXPIRE), in pipelines of
   * REFRESH_CALLS calls. The users the calls find expired go to `onExpired`, the ones they put
   * back to `onReturned`. A refresh still running when the next is due is not doubled.
   */
  async refresh(): Promise<void> {
    if (this.refreshing || this.local.rooms.size === 0) return;
    this.refreshing = true;
    try {
      const now = Date.now();
      const exp = now + this.ttlMs;
      let p = this.cmd.pipeline();
      let rooms: string[] = []; // the room of each call in the pipeline
      let failed: Error | undefined; // the first call that failed: thrown once every room was tried
      // ioredis flattens array arguments: no spread, so a call of many arguments is fine.
      const call = (room: string, keys: string[], args: (string | number)[]) => {
        p.parleyPresenceRefresh(keys.length, keys, args);
        rooms.push(room);
      };
      const exec = async () => {
        const results = (await p.exec()) ?? [];
        results.forEach(([err, result], i) => {
          const room = rooms[i];
          if (err !== null) failed ??= err;
          if (err !== null || room === undefined || !isPair(result)) return;
          const [gone, back] = result;
          if (gone.length > 0) this.onExpired?.(room, gone);
          if (back.length > 0) this.onReturned?.(room, back);
        });
        p = this.cmd.pipeline();
        rooms = [];
      };
      for (const [room, users] of this.local.rooms) {
        let keys = [this.roomKey(room)];
        let args: (string | number)[] = [exp, this.ttlMs, now];
        for (const [user, conns] of users) {
          keys.push(this.userKey(room, user));
          args.push(user, conns.size);
          for (const conn of conns) args.push(conn);
          if (keys.length <= REFRESH_USERS) continue;
          call(room, keys, args);
          [keys, args] = [[this.roomKey(room)], [exp, this.ttlMs, now]];
        }
        if (keys.length > 1) call(room, keys, args);
        if (rooms.length >= REFRESH_CALLS) await exec();
      }
      if (rooms.length > 0) await exec();
      if (failed !== undefined) throw failed;
    } finally {
      this.refreshing = false;
    }
  }

  /** Stops refreshing (the shard is the node's, closed by its owner). */
  override async close(): Promise<void> {
    clearInterval(this.timer);
    await super.close();
  }
}
