/**
 * Every pluggable driver of a node, built in one place from the config: the store, the broker,
 * presence, tickets, the login throttle and the rate limiter, and the one Redis shard (a command
 * and a subscriber connection) the Redis drivers share, made only when one of them needs it.
 * One lifecycle for all: `init()` opens them (the store first), `close()` closes them (the
 * shard last), `health()` is what /readyz reports per driver. Their background failures are
 * logged here, and so is a store that cannot write (logStoreHealth).
 */
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Driver } from './driver.js';
import { createBroker, type Broker } from './broker/index.js';
import { createPresence, type Presence } from './presence/index.js';
import { createRateLimiter, type RateLimiter } from './ratelimit/index.js';
import { RedisShard } from './redis/index.js';
import { createStore, type Store, type StoreFailure } from './store/index.js';
import { createThrottle, type Throttle } from './throttle/index.js';
import { createTickets, type Tickets } from './tickets/index.js';

/** How long a starting node waits for Redis before it serves anyway (answering 503 where Redis is needed). */
const REDIS_START_WAIT_MS = 3000;

/** How often a store that cannot write is summed up in the log, ms. */
export const STORE_SUMMARY_MS = 10_000;

/**
 * The log of a store that cannot write (store/health.ts), a few lines per outage however many
 * writes it refuses: one warning when it fails (the backend's code and message, no stack), at
 * most one line every STORE_SUMMARY_MS while it stays down, counting the operations refused
 * meanwhile by reason, and one info line once a write succeeds again. Returns its stop.
 */
function logStoreHealth(store: Store, log: Logger): () => void {
  let timer: NodeJS.Timeout | undefined;
  let outage: StoreFailure | undefined;
  /** The refusals already logged, per reason. */
  let logged = new Map<string, number>();
  const summarize = (): void => {
    if (outage === undefined) return;
    const reasons: Record<string, number> = {};
    let n = 0;
    for (const [reason, total] of outage.refused) {
      const fresh = total - (logged.get(reason) ?? 0);
      if (fresh <= 0) continue;
      reasons[reason] = fresh;
      n += fresh;
    }
    logged = new Map(outage.refused);
    if (n === 0) return;
    const list = Object.entries(reasons).map(([r, k]) => `${r} ${k}`).join(', ');
    log.warn({ store: store.driver, refused: n, reasons }, `store writes failing: ${n} refused in the last ${STORE_SUMMARY_MS / 1000} s (${list})`);
  };
  store.onHealth = (healthy) => {
    clearInterval(timer);
    timer = undefined;
    if (!healthy) {
      outage = store.failure;
      logged = new Map(outage?.refused ?? []);
      log.warn({ store: store.driver, reason: outage?.reason }, `store cannot write (${outage?.reason ?? 'unknown'}: ${outage?.message ?? 'unknown'}); refusing writes until one succeeds`);
      timer = setInterval(summarize, STORE_SUMMARY_MS);
      timer.unref();
      return;
    }
    const ended = outage;
    outage = undefined;
    if (ended === undefined) return;
    let refused = 0;
    for (const n of ended.refused.values()) refused += n;
    const seconds = Math.round((Date.now() - ended.since) / 100) / 10;
    log.info({ store: store.driver, reason: ended.reason, refused, seconds }, `store writes succeed again, after ${seconds} s (${refused} refused)`);
  };
  return () => clearInterval(timer);
}

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
  const stopStoreLog = logStoreHealth(store, log);
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
      stopStoreLog();
      for (const d of [tickets, throttle, rateLimiter, broker, store, presence]) await d.close();
      await redis?.close();
    },
  };
}
