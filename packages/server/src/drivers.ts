/**
 * Every pluggable driver of a node, built in one place from the config: the store, the broker,
 * presence, tickets, the login throttle and the rate limiter, and the one Redis shard (a command
 * and a subscriber connection) the Redis drivers share, made only when one of them needs it.
 * One lifecycle for all: `init()` opens them (the store first), `close()` closes them (the
 * shard last), `health()` is what /readyz reports per driver. Their background failures are
 * logged here.
 */
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Driver } from './driver.js';
import { createBroker, type Broker } from './broker/index.js';
import { createPresence, type Presence } from './presence/index.js';
import { createRateLimiter, type RateLimiter } from './ratelimit/index.js';
import { RedisShard } from './redis/index.js';
import { createStore, type Store } from './store/index.js';
import { createThrottle, type Throttle } from './throttle/index.js';
import { createTickets, type Tickets } from './tickets/index.js';

/** How long a starting node waits for Redis before it serves anyway (answering 503 where Redis is needed). */
const REDIS_START_WAIT_MS = 3000;

/** Drivers given instead of the ones the config names (tests, embedding). */
export interface DriverOverrides {
  store?: Store | undefined;
  broker?: Broker | undefined;
  presence?: Presence | undefined;
}

export interface Drivers {
  readonly store: Store;
  readonly broker: Broker;
  readonly presence: Presence;
  readonly tickets: Tickets;
  readonly throttle: Throttle;
  readonly rateLimiter: RateLimiter;
  /** The node's Redis connections, when a driver uses Redis. */
  readonly redis: RedisShard | undefined;
  /** Opens every driver, the store first; a node whose Redis is down starts degraded. */
  init(): Promise<void>;
  /** Every driver but the store (which /readyz pings itself): name → healthy. */
  health(): Record<string, boolean>;
  /** Closes every driver, then the Redis shard. */
  close(): Promise<void>;
}

/** `node`: the node's id, in the names of its Redis connections. */
export function createDrivers(config: Config, overrides: DriverOverrides, log: Logger, node?: string): Drivers {
  let redis: RedisShard | undefined;
  const shard = (): RedisShard => {
    if (config.redisUrl === undefined) throw new Error('a redis driver needs redisUrl'); // the config refuses this already
    return (redis ??= new RedisShard(config.redisUrl, REDIS_START_WAIT_MS, node));
  };
  const store = overrides.store ?? createStore(config);
  const broker = overrides.broker ?? createBroker(config, shard);
  const presence = overrides.presence ?? createPresence(config, shard);
  const tickets = createTickets(config, shard);
  const throttle = createThrottle(config, shard);
  const rateLimiter = createRateLimiter(config, shard);
  const others: Record<string, Driver> = { broker, presence, tickets, throttle, rateLimiter };

  store.onBackgroundError = (err) => log.warn({ err, store: store.driver }, 'store background work failed');
  for (const [name, d] of Object.entries(others)) {
    d.onBackgroundError = (err) => log.warn({ err, [name]: d.driver }, `${name} background work failed`);
  }
  const shared = redis;
  if (shared !== undefined) {
    shared.onHealth = (healthy) => {
      if (healthy) log.info('redis connected');
      else log.warn('redis connection lost; reconnecting (the drivers on it answer unavailable meanwhile)');
    };
  }

  return {
    store,
    broker,
    presence,
    tickets,
    throttle,
    rateLimiter,
    redis,
    async init() {
      await store.init();
      await Promise.all(Object.values(others).map((d) => d.init()));
    },
    health: () => Object.fromEntries(Object.entries(others).map(([name, d]) => [name, d.healthy])),
    async close() {
      for (const d of [tickets, throttle, rateLimiter, broker, store, presence]) await d.close();
      await redis?.close();
    },
  };
}
