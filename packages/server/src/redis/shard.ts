/**
 * The Redis connections of one node, shared by every Redis driver (as centrifuge's RedisShard):
 * one command connection and, when a driver subscribes, one subscriber connection (a subscribed
 * Redis connection can do nothing else). One retry strategy for both; ioredis reconnects by
 * itself and re-subscribes every channel.
 *
 * The command connection fails at once while Redis is unreachable (no offline queue, at most
 * COMMAND_TIMEOUT_MS in flight): a login or ticket answers 503 at once, a message is not held
 * up by the per-user limit (which fails open), and a publication that cannot go out now is not
 * sent late (receivers read what they missed from the store). The subscriber does not restore
 * subscriptions by itself (ioredis would restore only those that had succeeded): the broker keeps
 * the topics it wants and subscribes them again on every reconnect (broker/redis.ts).
 *
 * Each connection is named (CLIENT SETNAME) `parley:<node>:command` / `parley:<node>:subscriber`,
 * so an operator's CLIENT LIST tells the nodes' connections apart.
 */
import { Redis, type RedisOptions } from 'ioredis';

/** Reconnect backoff: 200 ms doubling to 5 s. */
export const retryStrategy = (attempt: number): number => Math.min(100 * 2 ** Math.min(attempt, 6), 5000);

/** Longest wait for one command: a Redis that hangs is as good as down. */
export const COMMAND_TIMEOUT_MS = 1000;

const COMMAND: RedisOptions = { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout: COMMAND_TIMEOUT_MS, retryStrategy };
const SUBSCRIBER: RedisOptions = { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, autoResubscribe: false, retryStrategy };

export class RedisShard {
  /** For commands and scripts (and publishing). */
  readonly command: Redis;
  private sub: Redis | undefined;
  private started = false;
  private readonly watchers: (() => void)[] = [];
  /** Set by the owner: called on every change of `healthy`. */
  onHealth?: ((healthy: boolean) => void) | undefined;
  private reported = false;

  constructor(
    private readonly url: string,
    /** How long `init` waits for Redis before the node serves anyway (degraded: 503 where Redis is needed). */
    private readonly startWaitMs = 3000,
    /** The node's id, in the connections' names. */
    readonly node = 'node',
  ) {
    this.command = this.open({ ...COMMAND, connectionName: `parley:${node}:command` });
  }

  /** The subscriber connection, opened on first use. */
  get subscriber(): Redis {
    if (this.sub === undefined) {
      this.sub = this.open({ ...SUBSCRIBER, connectionName: `parley:${this.node}:subscriber` });
      if (this.started) this.sub.connect().catch(() => undefined);
    }
    return this.sub;
  }

  /** Whether the command connection is up. */
  get healthy(): boolean {
    return this.command.status === 'ready';
  }

  /** Whether the subscriber connection is up (false before its first use). */
  get subscriberHealthy(): boolean {
    return this.sub?.status === 'ready';
  }

  /**
   * Reports a driver's health, derived from the connections by `get`, to `report()` whenever it
   * changes with either connection's state.
   */
  follow(get: () => boolean, report: () => ((healthy: boolean) => void) | undefined): void {
    let was = get();
    this.watchers.push(() => {
      const h = get();
      if (h === was) return;
      was = h;
      report()?.(h);
    });
  }

  /** Tells every follower to look at its health again (a driver's own part of it changed). */
  changed(): void {
    for (const fn of this.watchers) fn();
  }

  /**
   * Connects what was opened; resolves once it is ready, or after startWaitMs (ioredis keeps
   * retrying). Idempotent: every Redis driver calls it from its own init.
   */
  init(): Promise<void> {
    if (!this.started) {
      this.started = true;
      for (const c of this.connections()) c.connect().catch(() => undefined);
    }
    return Promise.all(this.connections().map((c) => ready(c, this.startWaitMs))).then(() => undefined);
  }

  /** Closes both connections (no health reports from here on). */
  async close(): Promise<void> {
    this.watchers.length = 0;
    this.onHealth = undefined;
    await Promise.all(this.connections().map((c) => c.quit().catch(() => c.disconnect())));
  }

  private connections(): Redis[] {
    return this.sub === undefined ? [this.command] : [this.command, this.sub];
  }

  private open(options: RedisOptions): Redis {
    const c = new Redis(this.url, options);
    const changed = () => {
      this.changed();
      if (this.healthy !== this.reported) {
        this.reported = this.healthy;
        this.onHealth?.(this.reported);
      }
    };
    c.on('ready', changed);
    c.on('close', changed);
    c.on('error', () => undefined); // reported through 'close' and health; ioredis retries
    return c;
  }
}

/** Resolves once `r` is ready, or after `ms`. */
function ready(r: Redis, ms: number): Promise<void> {
  if (r.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      r.off('ready', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    r.once('ready', done);
  });
}
